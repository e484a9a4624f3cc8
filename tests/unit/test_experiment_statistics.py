"""Leaderboard statistics checked against values worked out here independently: Wilson intervals from the textbook
formula, its defining equation and published examples; Bradley–Terry ratings from the two-player closed form and from
Newton's method on the log-likelihood written out per vote; standard errors from a finite-difference Hessian; and
known strengths recovered from simulated votes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.statistics import Interval, Record, Vote, bradley_terry, records, wilson_interval

Z = 1.959963984540054
SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}


def textbook_wilson(k: float, n: int, z: float = Z) -> tuple[float, float]:
    """(k + z²/2)/(n + z²) ± z·√n/(n + z²)·√(p̂q̂ + z²/(4n)), as Wilson (1927) / Agresti & Coull (1998) write it."""
    p = k / n
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(n) / (n + z * z) * math.sqrt(p * (1 - p) + z * z / (4 * n))
    return centre - half, centre + half


def rating_of(theta: np.ndarray) -> np.ndarray:
    """1000 + 400·log10(strength), strengths scaled to geometric mean 1."""
    return 1000 + 400 * np.log10(np.exp(theta - theta.mean()))


def log_likelihood(theta: np.ndarray, index: dict[str, int], votes: list[Vote], prior: float) -> float:
    """Bradley–Terry log-likelihood written per vote (a tie: half a win each), plus the prior: `prior` wins and
    `prior` losses of every chain against a virtual player of log-strength 0."""
    a = np.array([index[v.a] for v in votes])
    b = np.array([index[v.b] for v in votes])
    s = np.array([SCORE[v.outcome] for v in votes])
    d = theta[a] - theta[b]
    total = np.sum(s * -np.log1p(np.exp(-d)) + (1 - s) * -np.log1p(np.exp(d)))
    total += prior * np.sum(-np.log1p(np.exp(-theta)) - np.log1p(np.exp(theta)))
    return float(total)


def gradient(theta: np.ndarray, index: dict[str, int], votes: list[Vote], prior: float) -> np.ndarray:
    """∂/∂θ of `log_likelihood`: each vote gives its A side (score − P(A wins)) and its B side the opposite."""
    g = np.zeros_like(theta)
    for v in votes:
        i, j = index[v.a], index[v.b]
        residual = SCORE[v.outcome] - 1 / (1 + math.exp(theta[j] - theta[i]))
        g[i] += residual
        g[j] -= residual
    return g + prior * (1 - 2 / (1 + np.exp(-theta)))


def numerical_hessian(f, x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Central second differences of a scalar function."""
    n = x.size
    hessian = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            e_i, e_j = np.eye(n)[i] * h, np.eye(n)[j] * h
            hessian[i, j] = (f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)) / (4 * h * h)
    return hessian


def free(prior: float, n: int) -> tuple[np.ndarray, int]:
    """Without a prior the likelihood ignores a common shift: fix the first chain's log-strength at 0."""
    return (np.arange(1, n), 1) if prior == 0 else (np.arange(n), 0)


def newton_fit(names: list[str], votes: list[Vote], prior: float) -> np.ndarray:
    """The maximum of `log_likelihood` by Newton's method, Hessian by finite differences of the analytic gradient."""
    index = {name: i for i, name in enumerate(names)}
    params, _ = free(prior, len(names))
    theta = np.zeros(len(names))
    for _ in range(100):
        g = gradient(theta, index, votes, prior)[params]
        h = 1e-6
        hessian = np.empty((params.size, params.size))
        for column, k in enumerate(params):
            step = np.zeros_like(theta)
            step[k] = h
            hessian[:, column] = (gradient(theta + step, index, votes, prior)[params]
                                  - gradient(theta - step, index, votes, prior)[params]) / (2 * h)
        delta = np.linalg.solve(hessian, -g)
        theta[params] += delta
        if np.max(np.abs(delta)) < 1e-13:
            break
    assert np.max(np.abs(gradient(theta, index, votes, prior)[params])) < 1e-9
    return theta


def by_name(ratings) -> dict:
    return {r.name: r for r in ratings}


def tally(pairs: list[tuple[str, str, str, int]]) -> list[Vote]:
    return [Vote(a, b, outcome) for a, b, outcome, count in pairs for _ in range(count)]


# Four chains, every one shown on both sides, with ties and "both bad", one beating cycle so plain maximum
# likelihood exists; the last two never met directly.
LEAGUE = tally([
    ("assistant@1", "concise@1", "a", 9), ("concise@1", "assistant@1", "a", 4), ("assistant@1", "concise@1", "tie", 3),
    ("assistant@1", "agent@1", "b", 7), ("agent@1", "assistant@1", "b", 5), ("agent@1", "assistant@1", "both_bad", 2),
    ("draft_refine@1", "assistant@1", "a", 3), ("assistant@1", "draft_refine@1", "a", 6),
    ("concise@1", "agent@1", "a", 2), ("agent@1", "concise@1", "a", 8), ("concise@1", "agent@1", "tie", 1),
    ("draft_refine@1", "concise@1", "a", 5), ("concise@1", "draft_refine@1", "a", 3),
    ("assistant@1", "assistant@1", "a", 4),  # self-comparisons: ignored
])
LEAGUE_NAMES = sorted({v.a for v in LEAGUE})


# --- Wilson ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (8, 10), (1, 1), (0, 1), (3, 7), (50, 100), (81, 263), (7.5, 10),
                                  (0.5, 3), (999, 1000)])
def test_wilson_matches_the_textbook_formula_and_its_defining_equation(k, n):
    got = wilson_interval(k, n)
    low, high = textbook_wilson(k, n)
    assert got.low == pytest.approx(low, abs=1e-12) and got.high == pytest.approx(high, abs=1e-12)
    # The Wilson interval is the set of p the score test does not reject: |p̂ − p| = z·√(p(1 − p)/n) at both ends.
    p_hat = k / n
    for p in (got.low, got.high):
        assert n * (p_hat - p) ** 2 == pytest.approx(Z * Z * p * (1 - p), abs=1e-12)
    assert 0 <= got.low <= p_hat <= got.high <= 1


def test_wilson_published_values():
    # 8 of 10: [0.490, 0.943]; Newcombe (1998), Statistics in Medicine 17:857, method 3 (score, no continuity
    # correction): 81/263 → 0.2553–0.3662, 15/148 → 0.0624–0.1605, 0/20 → 0–0.1611, 1/29 → 0.0061–0.1718.
    got = wilson_interval(8, 10)
    assert (round(got.low, 3), round(got.high, 3)) == (0.490, 0.943)
    for k, n, low, high in [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
                            (1, 29, 0.0061, 0.1718)]:
        got = wilson_interval(k, n)
        assert (round(got.low, 4), round(got.high, 4)) == (low, high)


def test_wilson_edges():
    assert wilson_interval(0, 0) == Interval(0.0, 1.0)
    assert wilson_interval(0, 5).low == 0.0 and wilson_interval(5, 5).high == 1.0
    lower, upper = wilson_interval(0, 5), wilson_interval(5, 5)
    assert lower.high == pytest.approx(1 - upper.low, abs=1e-12)  # symmetric in successes ↔ failures
    for bad in [(-1, 5), (6, 5), (0, -1)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)


# --- Bradley–Terry ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wins_a, wins_b, ties", [(7, 3, 0), (6, 2, 4), (1, 12, 1), (5, 5, 2)])
def test_two_players_closed_form(wins_a, wins_b, ties):
    votes = tally([("x", "y", "a", wins_a), ("y", "x", "b", 0), ("y", "x", "a", wins_b), ("x", "y", "tie", ties)])
    got = by_name(bradley_terry(votes, prior=0))
    w_a, w_b = wins_a + ties / 2, wins_b + ties / 2
    assert got["x"].rating - got["y"].rating == pytest.approx(400 * math.log10(w_a / w_b), abs=1e-6)
    assert got["x"].rating + got["y"].rating == pytest.approx(2000, abs=1e-9)
    # Var(θx − θy) = 1/(N·p·q) at the MLE p = w_a/N; each rating is 1000 ± (θx − θy)/2 on the 400/ln 10 scale.
    n = wins_a + wins_b + ties
    p = w_a / n
    half_width = Z * 400 / math.log(10) * 0.5 / math.sqrt(n * p * (1 - p))
    for r in got.values():
        assert r.high - r.rating == pytest.approx(half_width, rel=1e-9)
        assert r.rating - r.low == pytest.approx(half_width, rel=1e-9)
        assert r.comparisons == n


@pytest.mark.parametrize("prior", [0.0, 0.5, 2.0])
def test_ratings_maximise_the_likelihood_written_per_vote(prior):
    expected = rating_of(newton_fit(LEAGUE_NAMES, LEAGUE, prior))
    got = by_name(bradley_terry(LEAGUE, prior=prior))
    assert sorted(got) == LEAGUE_NAMES
    for name, rating in zip(LEAGUE_NAMES, expected):
        assert got[name].rating == pytest.approx(rating, abs=1e-4)
    ratings = bradley_terry(LEAGUE, prior=prior)
    assert [r.rating for r in ratings] == sorted((r.rating for r in ratings), reverse=True)
    assert np.mean([r.rating for r in ratings]) == pytest.approx(1000, abs=1e-9)
    assert got["assistant@1"].comparisons == 9 + 4 + 3 + 7 + 5 + 2 + 3 + 6  # self-comparisons not counted


@pytest.mark.parametrize("prior", [0.0, 0.5])
def test_standard_errors_match_a_finite_difference_hessian(prior):
    names = LEAGUE_NAMES
    index = {name: i for i, name in enumerate(names)}
    theta = newton_fit(names, LEAGUE, prior)
    params, _ = free(prior, len(names))

    def f(x: np.ndarray) -> float:
        full = theta.copy()
        full[params] = x
        return log_likelihood(full, index, LEAGUE, prior)

    information = -numerical_hessian(f, theta[params])
    covariance = np.zeros((len(names), len(names)))
    covariance[np.ix_(params, params)] = np.linalg.inv(information)
    centring = np.eye(len(names)) - 1 / len(names)  # the ratings are relative to the mean log-strength
    se = np.sqrt(np.diag(centring @ covariance @ centring)) * 400 / math.log(10)

    got = by_name(bradley_terry(LEAGUE, prior=prior))
    for name, expected in zip(names, se):
        r = got[name]
        assert (r.high - r.low) / (2 * Z) == pytest.approx(expected, rel=1e-5)
        assert r.high - r.rating == pytest.approx(r.rating - r.low, rel=1e-9)


def simulate(rng: np.random.Generator, theta: np.ndarray, names: list[str], count: int) -> list[Vote]:
    pairs = np.array([(i, j) for i in range(len(names)) for j in range(len(names)) if i != j])
    chosen = pairs[rng.integers(len(pairs), size=count)]
    p_a = 1 / (1 + np.exp(theta[chosen[:, 1]] - theta[chosen[:, 0]]))
    a_wins = rng.random(count) < p_a
    return [Vote(names[i], names[j], "a" if w else "b") for (i, j), w in zip(chosen, a_wins)]


def test_known_strengths_recovered_from_simulated_votes():
    # One draw: each interval misses with probability 5%, so all five hold the truth in about 80% of draws (checked
    # over 400 draws: 95.1% of intervals, 80% of draws); the seed is fixed, and the coverage below is the real test.
    rng = np.random.default_rng(1)
    names = ["e", "d", "c", "b", "a"]
    theta = np.array([-0.9, -0.3, 0.0, 0.4, 0.8])
    true = dict(zip(names, rating_of(theta)))
    ratings = bradley_terry(simulate(rng, theta, names, 4000))
    assert [r.name for r in ratings] == ["a", "b", "c", "d", "e"]
    for r in ratings:
        assert r.low <= true[r.name] <= r.high
        assert r.high - r.low < 60

    # Coverage: over many smaller leaderboards about 95% of the intervals hold the true rating.
    inside = total = 0
    for _ in range(150):
        for r in bradley_terry(simulate(rng, theta, names, 600)):
            inside += r.low <= true[r.name] <= r.high
            total += 1
    assert 0.92 <= inside / total <= 0.98


def test_a_perfect_record_stays_finite_with_the_prior():
    votes = tally([("winner", "loser", "a", 10), ("loser", "winner", "b", 5)])
    with pytest.raises(ValueError, match="prior"):
        bradley_terry(votes, prior=0)
    got = by_name(bradley_terry(votes))
    for r in got.values():
        assert all(math.isfinite(x) for x in (r.rating, r.low, r.high))
        assert r.low < r.rating < r.high
    assert got["winner"].rating > 1000 > got["loser"].rating
    expected = rating_of(newton_fit(["loser", "winner"], votes, 0.5))
    assert got["loser"].rating == pytest.approx(expected[0], abs=1e-4)
    assert got["winner"].rating == pytest.approx(expected[1], abs=1e-4)
    # More evidence, higher rating, still finite.
    more = by_name(bradley_terry(votes * 4))
    assert got["winner"].rating < more["winner"].rating < math.inf


def test_groups_that_never_met_share_one_scale():
    votes = tally([("a", "b", "a", 3), ("b", "a", "a", 1), ("c", "d", "a", 3), ("d", "c", "a", 1)])
    with pytest.raises(ValueError):
        bradley_terry(votes, prior=0)
    got = by_name(bradley_terry(votes))
    assert got["a"].rating == pytest.approx(got["c"].rating, abs=1e-9)
    assert got["b"].rating == pytest.approx(got["d"].rating, abs=1e-9)
    assert got["a"].rating > 1000 > got["b"].rating
    assert all(math.isfinite(r.low) and math.isfinite(r.high) for r in got.values())


def test_empty_single_chain_and_bad_input():
    assert bradley_terry([]) == [] and records([]) == []
    alone = [Vote("solo@1", "solo@1", "a"), Vote("solo@1", "solo@1", "tie")]
    assert bradley_terry(alone) == [] and records(alone) == []
    with pytest.raises(ValueError, match="outcome"):
        bradley_terry([Vote("a", "b", "A")])
    with pytest.raises(ValueError, match="outcome"):
        records([Vote("a", "b", "draw")])
    with pytest.raises(ValueError):
        bradley_terry([Vote("a", "b", "a")], prior=-1)


# --- records ---------------------------------------------------------------------------------------------------------

def test_records_count_and_wilson():
    got = {r.name: r for r in records(LEAGUE)}
    assert got["assistant@1"] == Record("assistant@1", wins=9 + 5 + 6, losses=4 + 7 + 3, ties=3 + 2, both_bad=2)
    assert got["concise@1"] == Record("concise@1", wins=4 + 2 + 3, losses=9 + 8 + 5, ties=3 + 1, both_bad=0)
    assert got["agent@1"] == Record("agent@1", wins=7 + 8, losses=5 + 2, ties=2 + 1, both_bad=2)
    assert got["draft_refine@1"] == Record("draft_refine@1", wins=3 + 5, losses=6 + 3, ties=0, both_bad=0)
    assert sum(r.wins for r in got.values()) == sum(r.losses for r in got.values())
    assert sum(r.comparisons for r in got.values()) == 2 * sum(1 for v in LEAGUE if v.a != v.b)
    for r in got.values():
        assert r.comparisons == r.wins + r.losses + r.ties
        assert r.win_rate == pytest.approx((r.wins + r.ties / 2) / r.comparisons)
        low, high = textbook_wilson(r.wins + r.ties / 2, r.comparisons)
        assert r.interval.low == pytest.approx(low, abs=1e-12) and r.interval.high == pytest.approx(high, abs=1e-12)
    rates = [r.win_rate for r in records(LEAGUE)]
    assert rates == sorted(rates, reverse=True)


def test_record_edges():
    empty = Record("x", 0, 0, 0, 0)
    assert empty.comparisons == 0 and empty.win_rate == 0.0 and empty.interval == Interval(0.0, 1.0)
    (a, b) = sorted(records([Vote("a", "b", "both_bad"), Vote("b", "a", "tie"), Vote("a", "b", "a")]),
                    key=lambda r: r.name)
    assert (a.wins, a.losses, a.ties, a.both_bad, a.win_rate) == (1, 0, 2, 1, 2 / 3)
    assert (b.wins, b.losses, b.ties, b.both_bad, b.win_rate) == (0, 1, 2, 1, 1 / 3)
    assert a.interval == wilson_interval(2, 3)
