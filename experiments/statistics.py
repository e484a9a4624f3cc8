"""The statistics behind the leaderboard of chains compared side by side by people (blind A/B votes).

Two views of the same votes:
- `records`: each chain's wins, losses and ties with a Wilson interval on its win rate. Simple, but a win rate depends
  on whom the chain happened to meet.
- `bradley_terry`: one strength per chain fitted to every vote at once (P(i beats j) = s_i / (s_i + s_j)), so chains
  that met different opponents land on one scale; shown as Elo-like ratings with 95% intervals.

Ties and "both bad" count as half a win for each side, in both views. A self-comparison (the same chain shown as A
and as B) says nothing about which chain is better and is ignored everywhere; a chain seen only in such votes is not
listed.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% quantile of the standard normal
OUTCOMES = ("a", "b", "tie", "both_bad")
ELO_SCALE = 400.0 / math.log(10.0)  # rating points per unit of natural log-strength


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson_interval(successes: float, trials: int, z: float = Z95) -> Interval:
    """Wilson score interval for a proportion: unlike the normal (Wald) interval it stays inside [0, 1] and keeps a
    sensible width at 0/n and n/n, which small leaderboards hit all the time. Ties count as half a success, so
    `successes` may be x.5. No trials → the uninformative Interval(0.0, 1.0)."""
    if trials < 0:
        raise ValueError(f"trials must be >= 0, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be between 0 and trials ({trials}), got {successes}")
    if trials == 0:
        return Interval(0.0, 1.0)
    n = float(trials)
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half_width = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # At 0/n and n/n the end is exactly 0 or 1 (rounding would leave 1e-16 off).
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return Interval(low, high)


@dataclass(frozen=True)
class Vote:
    a: str  # chain label shown as A, e.g. "assistant@1"
    b: str  # chain label shown as B
    outcome: str  # "a" (A better), "b" (B better), "tie", "both_bad"


@dataclass(frozen=True)
class Rating:
    name: str
    rating: float  # 1000 + 400·log10(strength), strengths scaled so their geometric mean is 1 (mean rating 1000)
    low: float  # 95% interval of the rating
    high: float
    comparisons: int


@dataclass(frozen=True)
class Record:
    name: str
    wins: int
    losses: int
    ties: int  # includes the both_bad votes
    both_bad: int  # of the ties, those where the person found both answers bad

    @property
    def comparisons(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float:
        """(wins + ties/2) / comparisons: a tie is half a win, as in the ratings; 0 when there are none."""
        return (self.wins + self.ties / 2) / self.comparisons if self.comparisons else 0.0

    @property
    def interval(self) -> Interval:
        return wilson_interval(self.wins + self.ties / 2, self.comparisons)


def _counted(votes: Sequence[Vote]) -> list[Vote]:
    """Votes that compare two different chains; an unknown outcome is a caller's bug, so it raises."""
    kept = []
    for vote in votes:
        if vote.outcome not in OUTCOMES:
            raise ValueError(f"unknown vote outcome {vote.outcome!r}, expected one of {OUTCOMES}")
        if vote.a != vote.b:
            kept.append(vote)
    return kept


def records(votes: Sequence[Vote]) -> list[Record]:
    """Each chain's record, best win rate first (then more comparisons, then name)."""
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # wins, losses, ties, both_bad
    for vote in _counted(votes):
        a, b = tally[vote.a], tally[vote.b]
        if vote.outcome == "a":
            a[0] += 1
            b[1] += 1
        elif vote.outcome == "b":
            b[0] += 1
            a[1] += 1
        else:
            a[2] += 1
            b[2] += 1
            if vote.outcome == "both_bad":
                a[3] += 1
                b[3] += 1
    result = [Record(name, *counts) for name, counts in tally.items()]
    return sorted(result, key=lambda r: (-r.win_rate, -r.comparisons, r.name))


def _strongly_connected(wins: np.ndarray) -> bool:
    """Whether every chain can reach every other along "has beaten (at least half a win)" edges: without a prior,
    the Bradley–Terry maximum likelihood exists exactly then (Ford 1957; Hunter 2004, assumption 1)."""
    n = wins.shape[0]

    def reach(adjacent: np.ndarray) -> int:
        seen = {0}
        frontier = [0]
        while frontier:
            i = frontier.pop()
            for j in np.flatnonzero(adjacent[i]):
                if j not in seen:
                    seen.add(int(j))
                    frontier.append(int(j))
        return len(seen)

    edges = wins > 0
    return reach(edges) == n and reach(edges.T) == n


def _best_shift(theta: np.ndarray, prior: float) -> float:
    """The common shift c of all log-strengths that maximises the penalised likelihood (the votes' likelihood does
    not depend on it). With a prior only the virtual player pins the overall level, which the MM step moves by
    roughly prior/comparisons per round; solving for it exactly each round keeps convergence as fast as without
    a prior. Optimum: Σ σ(θ_i + c) = n/2 (σ the logistic function); without a prior, centre the log-strengths."""
    if prior == 0:
        return float(-theta.mean())
    half = theta.size / 2.0
    low, high = float(-theta.max()) - 1.0, float(-theta.min()) + 1.0  # excess(low) < 0 < excess(high)
    c = 0.0 if low < 0.0 < high else float(-theta.mean())  # after the first round the best shift is near 0
    for _ in range(100):  # Newton on an increasing function, falling back to bisection when it leaves the bracket
        sigma = 0.5 * (1.0 + np.tanh((theta + c) / 2.0))  # the logistic function, without overflow
        excess = float(sigma.sum()) - half
        if excess == 0.0:
            return c
        if excess > 0:
            high = c
        else:
            low = c
        slope = float((sigma * (1.0 - sigma)).sum())
        candidate = c - excess / slope if slope > 0 else math.nan
        if not low < candidate < high:
            candidate = (low + high) / 2.0
        if abs(candidate - c) <= 1e-15 * max(1.0, abs(c)):
            return candidate
        c = candidate
    return c


def bradley_terry(votes: Sequence[Vote], *, iterations: int = 1000, tolerance: float = 1e-10,
                  prior: float = 0.5) -> list[Rating]:
    """Bradley–Terry ratings, best first: P(i beats j) = s_i / (s_i + s_j), fitted by maximum (penalised) likelihood.

    Ties and "both bad" count as half a win for each side. Rao–Kupper or Davidson would model ties with an extra
    parameter; half-wins keep the model to one parameter per chain and are what Chatbot Arena's Bradley–Terry does.

    The prior: every chain also has `prior` pseudo-wins and `prior` pseudo-losses against a virtual average player
    of fixed strength 1. Without it a chain that won (or lost) every comparison has an infinite maximum-likelihood
    rating, and chains in groups that never met have no common scale; with it the fit always exists, is unique,
    and pulls such chains only gently toward the middle (0.5 ≈ one tied game). `prior=0` is plain maximum
    likelihood, which raises ValueError when it does not exist (the "has beaten" graph is not strongly connected).

    Fit: Hunter's (2004) minorization–maximization, s_i ← W_i / Σ_j N_ij / (s_i + s_j) (the virtual player adds
    `prior` to W_i and 2·prior/(s_i + 1) to the sum), each round followed by the best common rescaling of all
    strengths (`_best_shift`), until no log-strength moves more than `tolerance`, or `iterations` rounds. Neither
    step can lower the (penalised) likelihood, and there is no step size to tune.

    Uncertainty: the observed Fisher information in log-strength space (minus the Hessian of the penalised
    log-likelihood at the fit), inverted with a pseudo-inverse and projected onto the sum-to-zero contrasts, since
    the reported rating is relative to the geometric mean; ±1.96 standard errors on the rating scale.
    """
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    counted = _counted(votes)
    if not counted:
        return []
    names = sorted({v.a for v in counted} | {v.b for v in counted})
    index = {name: i for i, name in enumerate(names)}
    n = len(names)
    wins = np.zeros((n, n))  # wins[i, j]: wins of i over j, ties as halves
    for vote in counted:
        i, j = index[vote.a], index[vote.b]
        if vote.outcome == "a":
            wins[i, j] += 1.0
        elif vote.outcome == "b":
            wins[j, i] += 1.0
        else:
            wins[i, j] += 0.5
            wins[j, i] += 0.5
    games = wins + wins.T  # games[i, j]: comparisons of i with j
    comparisons = games.sum(axis=1)
    if prior == 0 and not _strongly_connected(wins):
        raise ValueError("the maximum-likelihood ratings do not exist for these votes (some chain won or lost all "
                         "its comparisons, or groups of chains never met); use prior > 0")

    total_wins = wins.sum(axis=1) + prior
    strength = np.ones(n)
    for _ in range(max(1, iterations)):
        pair_sums = strength[:, None] + strength[None, :]
        denominator = (games / pair_sums).sum(axis=1) + 2.0 * prior / (strength + 1.0)
        updated = total_wins / denominator
        updated *= np.exp(_best_shift(np.log(updated), prior))
        change = np.max(np.abs(np.log(updated) - np.log(strength)))
        strength = updated
        if change < tolerance:
            break

    theta = np.log(strength)
    theta -= theta.mean()  # geometric mean strength 1
    # Observed information in log-strength space: Σ N_ij p_ij p_ji on the diagonal, −N_ij p_ij p_ji off it, and the
    # virtual player's 2·prior·σ(θ_i)(1 − σ(θ_i)) on the diagonal (evaluated at the unshifted fit).
    p = strength[:, None] / (strength[:, None] + strength[None, :])
    weights = games * p * p.T
    information = np.diag(weights.sum(axis=1)) - weights
    sigma = strength / (strength + 1.0)
    information += np.diag(2.0 * prior * sigma * (1.0 - sigma))
    centring = np.eye(n) - np.full((n, n), 1.0 / n)
    covariance = centring @ np.linalg.pinv(information, hermitian=True) @ centring
    standard_errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))

    ratings = [Rating(name=name, rating=float(1000.0 + ELO_SCALE * theta[i]),
                      low=float(1000.0 + ELO_SCALE * (theta[i] - Z95 * standard_errors[i])),
                      high=float(1000.0 + ELO_SCALE * (theta[i] + Z95 * standard_errors[i])),
                      comparisons=int(round(comparisons[i])))
               for i, name in enumerate(names)]
    return sorted(ratings, key=lambda r: (-r.rating, r.name))
