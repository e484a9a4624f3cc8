"""The report of an evaluation run, from its results.jsonl: `report.md` (tables) and `report.html`, one self-contained
page with the same tables and charts drawn here as inline SVG (score vs cost per chain, latency distribution,
per-tag scores, judge verdicts). No script, stylesheet, font or image is loaded from anywhere.

Win rates count only consistent verdicts (a win in both orders); ties, inconsistent verdicts and no verdicts are
shown beside them. Intervals are Wilson 95% intervals when experiments.statistics is there.
"""
from __future__ import annotations

import html
import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from experiments.runner import ANSWER, ANSWERED, JUDGEMENT, RESULTS_FILE, RUN, ResultsFile, latest

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
VERDICT_COLOURS = {"tie": "#bbbbbb", "inconsistent": "#f0c419", "no verdict": "#7f7f7f", "not judged": "#e6e6e6"}


def _wilson(successes: int, trials: int) -> tuple[float, float] | None:
    """The 95% Wilson interval from experiments.statistics, or None when that module is not there (yet)."""
    if trials <= 0:
        return None
    try:
        from experiments.statistics import wilson_interval
    except ImportError:
        return None
    interval = wilson_interval(successes, trials)
    return float(interval.low), float(interval.high)


# -- the numbers -----------------------------------------------------------------------------------------------------
@dataclass
class ChainRow:
    chain: str
    answers: int = 0
    answered: int = 0  # complete or filtered
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    scored: int = 0
    correct: int = 0
    cost: Decimal = Decimal(0)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # of completion_tokens: a reasoning model's hidden thinking (billed as output)
    latencies_ms: list[float] = field(default_factory=list)
    ttfts_ms: list[float] = field(default_factory=list)

    @property
    def mean_score(self) -> float | None:
        return self.correct / self.scored if self.scored else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return _wilson(self.correct, self.scored)

    @property
    def cost_per_item(self) -> float | None:
        return float(self.cost) / self.answers if self.answers else None


@dataclass
class PairRow:
    a: str
    b: str
    wins_a: int = 0
    wins_b: int = 0
    ties: int = 0
    inconsistent: int = 0
    no_verdict: int = 0
    not_judged: int = 0

    @property
    def decisive(self) -> int:
        return self.wins_a + self.wins_b

    @property
    def win_rate_a(self) -> float | None:
        return self.wins_a / self.decisive if self.decisive else None

    @property
    def interval_a(self) -> tuple[float, float] | None:
        return _wilson(self.wins_a, self.decisive)

    @property
    def consistency(self) -> float | None:
        """Share of verdicts (both replies on format) that agreed across the swap."""
        valid = self.decisive + self.ties + self.inconsistent
        return (self.decisive + self.ties) / valid if valid else None


@dataclass
class Report:
    title: str
    meta: list[tuple[str, str]]
    chains: list[ChainRow]
    pairs: list[PairRow]
    tags: list[str]
    tag_scores: dict[tuple[str, str], tuple[int, int]]  # (tag, chain) -> (correct, scored)
    failures: list[dict]
    judge_cost: Decimal
    problems: list[str]


def build_report(records: list[dict], *, problems: list[str] = ()) -> Report:
    runs = [r for r in records if r.get("kind") == RUN]
    run = runs[-1] if runs else {}
    final = list(latest(records).values())
    answers = [r for r in final if r.get("kind") == ANSWER]
    judgements = [r for r in final if r.get("kind") == JUDGEMENT]
    order = list(run.get("chains") or [])
    order += sorted({r["chain"] for r in answers} - set(order))
    rows = {chain: ChainRow(chain) for chain in order}
    tag_scores: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    failures = []
    for record in answers:
        row = rows[record["chain"]]
        row.answers += 1
        if record.get("status") in ANSWERED:
            row.answered += 1
        else:
            row.failures[record.get("failure") or record.get("status") or "unknown"] += 1
            failures.append(record)
        if record.get("score") is not None:
            row.scored += 1
            row.correct += int(record["score"] >= 1.0)
            for tag in record.get("tags") or ["(untagged)"]:
                tag_scores[(tag, row.chain)][0] += int(record["score"] >= 1.0)
                tag_scores[(tag, row.chain)][1] += 1
        row.cost += Decimal(record.get("cost_usd") or 0)
        row.prompt_tokens += record.get("prompt_tokens") or 0
        row.completion_tokens += record.get("completion_tokens") or 0
        row.reasoning_tokens += record.get("reasoning_tokens") or 0
        if record.get("latency_ms") is not None and record.get("status") in ANSWERED:
            row.latencies_ms.append(record["latency_ms"])
        if record.get("ttft_ms") is not None:
            row.ttfts_ms.append(record["ttft_ms"])
    pairs: dict[tuple[str, str], PairRow] = {}
    judge_cost = Decimal(0)
    for record in judgements:
        a, b = record["chains"]
        pair = pairs.get((a, b)) or pairs.get((b, a)) or pairs.setdefault((a, b), PairRow(a, b))
        verdict = record.get("verdict")
        if verdict == "win":
            if record.get("winner") == pair.a:
                pair.wins_a += 1
            else:
                pair.wins_b += 1
        elif verdict in ("tie", "inconsistent", "no_verdict", "not_judged"):
            counter = "ties" if verdict == "tie" else verdict
            setattr(pair, counter, getattr(pair, counter) + 1)
        judge_cost += Decimal(record.get("cost_usd") or 0)
    tags = sorted({tag for tag, _ in tag_scores})
    dataset = Path(run.get("dataset") or "results").stem
    meta = [("dataset", str(run.get("dataset", "?"))), ("items", str(run.get("items", "?"))),
            ("chains", ", ".join(order)), ("deployment", str(run.get("deployment", "?"))),
            ("judge", str(run.get("judge") or "none")), ("concurrency", str(run.get("concurrency", "?"))),
            ("max output tokens", str(run.get("max_output_tokens", "?"))),
            ("temperature", "chain or model default" if run.get("temperature") is None else str(run["temperature"])),
            ("answers recorded", str(len(answers))), ("judgements recorded", str(len(judgements))),
            ("last started", str(run.get("started_at", "?")))]
    expected = (run.get("items") or 0) * len(run.get("chains") or [])
    if expected and len([r for r in answers if r["chain"] in (run.get("chains") or [])]) < expected:
        meta.append(("state", "PARTIAL: the run has not finished; run the same command again to resume"))
    return Report(title=f"Evaluation: {dataset} on {run.get('deployment', '?')}", meta=meta,
                  chains=[rows[c] for c in order], pairs=list(pairs.values()), tags=tags,
                  tag_scores={k: (v[0], v[1]) for k, v in tag_scores.items()}, failures=failures,
                  judge_cost=judge_cost, problems=list(problems))


def write_report(out_dir: Path, *, problems: list[str] = ()) -> tuple[Path, Path]:
    """Reads `<out_dir>/results.jsonl`, writes `report.md` and `report.html` next to it; returns their paths."""
    report = build_report(ResultsFile(Path(out_dir) / RESULTS_FILE).read(), problems=problems)
    markdown, page = Path(out_dir) / "report.md", Path(out_dir) / "report.html"
    markdown.write_text(render_markdown(report), encoding="utf-8")
    page.write_text(render_html(report), encoding="utf-8")
    return markdown, page


# -- formatting ------------------------------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _interval(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f" ({interval[0] * 100:.0f}–{interval[1] * 100:.0f}%)"


def _money(value: float | Decimal | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value == 0:
        return "$0"
    digits = max(2, 2 - math.floor(math.log10(abs(value))))
    return f"${value:.{digits}f}"


def _ms(values: list[float], q: float) -> str:
    return "—" if not values else f"{_quantile(values, q) / 1000:.2f} s"


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _chain_table(report: Report) -> tuple[list[str], list[list[str]]]:
    headers = ["chain", "answers", "answered", "failed", "score", "cost", "cost / item", "tokens in / out",
               "latency p50", "latency p90", "first token p50"]
    rows = []
    for row in report.chains:
        failed = ", ".join(f"{n} {kind}" for kind, n in sorted(row.failures.items())) or "0"
        score = "—" if row.mean_score is None else f"{_pct(row.mean_score)}{_interval(row.interval)} of {row.scored}"
        rows.append([row.chain, str(row.answers), str(row.answered), failed, score, _money(row.cost),
                     _money(row.cost_per_item), f"{row.prompt_tokens} / {row.completion_tokens}"
                     + (f" ({row.reasoning_tokens} reasoning)" if row.reasoning_tokens else ""),
                     _ms(row.latencies_ms, 0.5), _ms(row.latencies_ms, 0.9), _ms(row.ttfts_ms, 0.5)])
    return headers, rows


def _pair_table(report: Report) -> tuple[list[str], list[list[str]]]:
    headers = ["A", "B", "A wins", "B wins", "ties", "inconsistent", "no verdict", "not judged", "A's win rate",
               "consistent"]
    rows = [[p.a, p.b, str(p.wins_a), str(p.wins_b), str(p.ties), str(p.inconsistent), str(p.no_verdict),
             str(p.not_judged), f"{_pct(p.win_rate_a)}{_interval(p.interval_a)} of {p.decisive}",
             _pct(p.consistency)] for p in report.pairs]
    return headers, rows


def _tag_table(report: Report) -> tuple[list[str], list[list[str]]]:
    headers = ["tag", *[row.chain for row in report.chains]]
    rows = []
    for tag in report.tags:
        cells = [tag]
        for row in report.chains:
            correct, scored = report.tag_scores.get((tag, row.chain), (0, 0))
            cells.append(f"{_pct(correct / scored)} of {scored}" if scored else "—")
        rows.append(cells)
    return headers, rows


def _failure_table(report: Report) -> tuple[list[str], list[list[str]]]:
    return ["item", "chain", "status", "failure", "notice"], [
        [str(r.get("item")), str(r.get("chain")), str(r.get("status")), str(r.get("failure") or ""),
         str(r.get("notice") or "")[:160]] for r in report.failures]


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


NOTES = ("Score: share of scored answers matching the reference (exact / contains / regex). Win rate: A's wins among "
         "consistent decisive verdicts (the judge was asked twice with the answers swapped; a verdict that changed "
         "with the order is inconsistent and an off-format reply is no verdict; neither counts as a win).")


def render_markdown(report: Report) -> str:
    parts = [f"# {report.title}", "", *[f"- **{k}**: {v}" for k, v in report.meta], "",
             "Charts: see report.html next to this file.", "", "## Chains", "", _md_table(*_chain_table(report)), ""]
    if report.pairs:
        parts += ["## Pairwise judge", "", _md_table(*_pair_table(report)), "",
                  f"Judge cost: {_money(report.judge_cost)}", ""]
    if report.tags:
        parts += ["## Score by tag", "", _md_table(*_tag_table(report)), ""]
    if report.failures:
        parts += ["## Answers that did not come back", "", _md_table(*_failure_table(report)), ""]
    if report.problems:
        parts += ["## Dataset lines skipped", "", *[f"- {p}" for p in report.problems], ""]
    parts += [NOTES, ""]
    return "\n".join(parts)


# -- SVG charts --------------------------------------------------------------------------------------------------------
def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not high > low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step + 1e-9) * step
    values, value = [], start
    while value < high + step * 0.999:
        values.append(round(value, 12))
        value += step
    return values


class _Plot:
    """A plotting area with linear x and y axes, ticks and labels, drawn into one <svg>."""

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float], *, left: int = 64,
                 right: int = 20, top: int = 16, bottom: int = 48) -> None:
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, right, top, bottom
        self.x0, self.x1 = x
        self.y0, self.y1 = y
        self.parts: list[str] = []

    def sx(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (value - self.x0) / span * (self.width - self.left - self.right)

    def sy(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.height - self.bottom - (value - self.y0) / span * (self.height - self.top - self.bottom)

    def axes(self, xticks: list[float], yticks: list[float], xfmt, yfmt, xlabel: str, ylabel: str) -> None:
        bottom, left = self.height - self.bottom, self.left
        for t in yticks:
            y = self.sy(t)
            self.parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{self.width - self.right}" y2="{y:.1f}" '
                              f'class="grid"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(yfmt(t))}</text>')
        for t in xticks:
            x = self.sx(t)
            self.parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" class="axis"/>'
                              f'<text x="{x:.1f}" y="{bottom + 17}" text-anchor="middle">{_e(xfmt(t))}</text>')
        self.parts.append(f'<line x1="{left}" y1="{bottom}" x2="{self.width - self.right}" y2="{bottom}" class="axis"/>'
                          f'<line x1="{left}" y1="{self.top}" x2="{left}" y2="{bottom}" class="axis"/>')
        if xlabel:
            self.parts.append(f'<text x="{(left + self.width - self.right) / 2:.0f}" y="{self.height - 8}" '
                              f'text-anchor="middle" class="label">{_e(xlabel)}</text>')
        if ylabel:
            self.parts.append(f'<text transform="translate(14 {(self.top + bottom) / 2:.0f}) rotate(-90)" '
                              f'text-anchor="middle" class="label">{_e(ylabel)}</text>')

    def svg(self, title: str) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" role="img" aria-label="{_e(title)}"><title>{_e(title)}'
                f'</title>{"".join(self.parts)}</svg>')


def _colour(report: Report, chain: str) -> str:
    names = [row.chain for row in report.chains]
    return PALETTE[names.index(chain) % len(PALETTE)] if chain in names else "#444444"


def _tick_format(ticks: list[float], prefix: str = "", suffix: str = ""):
    """Labels with as many decimals as the tick step needs, the same for every tick."""
    step = (ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = 0
    while decimals < 12 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    return lambda value: f"{prefix}{value:.{decimals}f}{suffix}"


def score_cost_chart(report: Report) -> str:
    rows = [r for r in report.chains if r.mean_score is not None and r.cost_per_item is not None]
    if not rows:
        return '<p class="empty">No scored answers: nothing to plot (items need a reference).</p>'
    xt = _ticks(0.0, max(r.cost_per_item for r in rows) * 1.15 or 1e-6)
    yt = [0.0, 0.25, 0.5, 0.75, 1.0]
    plot = _Plot(600, 340, (xt[0], xt[-1]), (0.0, 1.0), right=60)
    plot.axes(xt, yt, _tick_format(xt, "$"), lambda v: f"{v * 100:.0f}%", "mean cost per item (USD)", "score")
    placed: list[tuple[float, float, float]] = []  # label boxes (x, y, width) already drawn
    for row in sorted(rows, key=lambda r: -r.mean_score):
        x, y, colour = plot.sx(row.cost_per_item), plot.sy(row.mean_score), _colour(report, row.chain)
        if row.interval:
            low, high = plot.sy(row.interval[0]), plot.sy(row.interval[1])
            plot.parts.append(f'<line x1="{x:.1f}" y1="{low:.1f}" x2="{x:.1f}" y2="{high:.1f}" stroke="{colour}" '
                              f'stroke-width="2" opacity="0.6"/>')
        plot.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{colour}"><title>{_e(row.chain)}: '
                          f'{_pct(row.mean_score)} at {_money(row.cost_per_item)} per item</title></circle>')
        width, label_y = 7.0 * len(row.chain), y - 8
        while any(abs(label_y - py) < 14 and x + 9 < px + pw and px < x + 9 + width for px, py, pw in placed):
            label_y += 14  # another chain's label is there: write this one below it
        placed.append((x + 9, label_y, width))
        plot.parts.append(f'<text x="{x + 9:.1f}" y="{label_y:.1f}" fill="{colour}">{_e(row.chain)}</text>')
    return plot.svg("Score against cost per item, one point per chain")


def latency_chart(report: Report) -> str:
    rows = [r for r in report.chains if r.latencies_ms]
    if not rows:
        return '<p class="empty">No answered turn: no latency to show.</p>'
    top = max(max(r.latencies_ms) for r in rows) / 1000
    xt = _ticks(0.0, top * 1.05 or 1.0)
    lane = 46
    plot = _Plot(640, 60 + lane * len(rows), (xt[0], xt[-1]), (0.0, float(len(rows))), left=130)
    plot.axes(xt, [], _tick_format(xt, suffix=" s"), str, "latency of the turn (seconds); box: quartiles, line: median", "")
    for index, row in enumerate(rows):
        centre, colour = plot.top + lane * index + lane / 2, _colour(report, row.chain)
        seconds = sorted(v / 1000 for v in row.latencies_ms)
        q1, q2, q3 = (_quantile(seconds, q) for q in (0.25, 0.5, 0.75))
        plot.parts.append(f'<text x="{plot.left - 8}" y="{centre + 4:.1f}" text-anchor="end">{_e(row.chain)}</text>'
                          f'<line x1="{plot.sx(seconds[0]):.1f}" y1="{centre:.1f}" x2="{plot.sx(seconds[-1]):.1f}" '
                          f'y2="{centre:.1f}" stroke="{colour}"/>'
                          f'<rect x="{plot.sx(q1):.1f}" y="{centre - 12:.1f}" width="{max(plot.sx(q3) - plot.sx(q1), 1):.1f}" '
                          f'height="24" fill="{colour}" fill-opacity="0.18" stroke="{colour}"/>'
                          f'<line x1="{plot.sx(q2):.1f}" y1="{centre - 12:.1f}" x2="{plot.sx(q2):.1f}" '
                          f'y2="{centre + 12:.1f}" stroke="{colour}" stroke-width="3"/>')
        for n, value in enumerate(seconds):
            jitter = ((n * 7919) % 17 - 8) * 1.1  # deterministic spread so equal values stay visible
            plot.parts.append(f'<circle cx="{plot.sx(value):.1f}" cy="{centre + jitter:.1f}" r="2.2" fill="{colour}" '
                              f'opacity="0.7"/>')
    return plot.svg("Latency distribution per chain")


def tag_chart(report: Report) -> str:
    if not report.tags:
        return '<p class="empty">No scored, tagged answers: no per-tag breakdown.</p>'
    chains = [r.chain for r in report.chains]
    group = max(24 * len(chains) + 18, 60)
    plot = _Plot(max(420, 70 + group * len(report.tags)), 320, (0.0, float(len(report.tags))), (0.0, 1.0), bottom=70)
    plot.axes([], [0.0, 0.25, 0.5, 0.75, 1.0], str, lambda v: f"{v * 100:.0f}%", "", "score")
    for t, tag in enumerate(report.tags):
        x0 = plot.sx(t) + 9
        width = (plot.sx(t + 1) - plot.sx(t) - 18) / max(len(chains), 1)
        for c, chain in enumerate(chains):
            correct, scored = report.tag_scores.get((tag, chain), (0, 0))
            if not scored:
                continue
            value = correct / scored
            y = min(plot.sy(value), plot.sy(0) - 2)  # a 0% bar stays visible as a line
            plot.parts.append(f'<rect x="{x0 + c * width:.1f}" y="{y:.1f}" width="{max(width - 2, 1):.1f}" '
                              f'height="{plot.sy(0) - y:.1f}" fill="{_colour(report, chain)}"><title>{_e(tag)} · '
                              f'{_e(chain)}: {_pct(value)} of {scored}</title></rect>')
        plot.parts.append(f'<text x="{(plot.sx(t) + plot.sx(t + 1)) / 2:.1f}" y="{plot.sy(0) + 18:.1f}" '
                          f'text-anchor="middle">{_e(tag)}</text>')
    legend = [f'<rect x="{plot.left + 130 * i}" y="{plot.height - 24}" width="12" height="12" '
              f'fill="{_colour(report, chain)}"/><text x="{plot.left + 130 * i + 16}" y="{plot.height - 14}">'
              f'{_e(chain)}</text>' for i, chain in enumerate(chains)]
    plot.parts += legend
    return plot.svg("Score per tag and chain")


def verdict_chart(report: Report) -> str:
    if not report.pairs:
        return ""
    width, lane, left = 640, 40, 20
    parts = []
    for index, pair in enumerate(report.pairs):
        segments = [(pair.wins_a, _colour(report, pair.a), f"{pair.a} wins"),
                    (pair.ties, VERDICT_COLOURS["tie"], "tie"),
                    (pair.wins_b, _colour(report, pair.b), f"{pair.b} wins"),
                    (pair.inconsistent, VERDICT_COLOURS["inconsistent"], "inconsistent"),
                    (pair.no_verdict, VERDICT_COLOURS["no verdict"], "no verdict"),
                    (pair.not_judged, VERDICT_COLOURS["not judged"], "not judged")]
        total = sum(n for n, _, _ in segments) or 1
        y, x = 24 + index * (lane + 24), float(left)
        parts.append(f'<text x="{left}" y="{y - 6}">{_e(pair.a)} vs {_e(pair.b)}</text>')
        for count, colour, name in segments:
            if count:
                span = count / total * (width - 2 * left)
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{span:.1f}" height="{lane - 12}" fill="{colour}">'
                             f'<title>{_e(name)}: {count}</title></rect>')
                if span > 30:
                    parts.append(f'<text x="{x + span / 2:.1f}" y="{y + lane / 2:.1f}" text-anchor="middle" '
                                 f'class="onbar">{count}</text>')
                x += span
    height = 24 + len(report.pairs) * (lane + 24) + 20
    parts += [f'<rect x="{left + 120 * i}" y="{height - 16}" width="12" height="12" fill="{c}"/><text '
              f'x="{left + 120 * i + 16}" y="{height - 6}">{_e(n)}</text>' for i, (n, c) in enumerate(VERDICT_COLOURS.items())]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 4}" viewBox="0 0 {width} '
            f'{height + 4}" role="img" aria-label="Judge verdicts per pair"><title>Judge verdicts per pair</title>'
            f'{"".join(parts)}</svg>')


# -- the page ----------------------------------------------------------------------------------------------------------
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;
color:#222}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;
vertical-align:top}th{background:#f5f5f5}dl{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem}
dt{font-weight:600}dd{margin:0}svg{font:12px system-ui,sans-serif;display:block;margin:.5rem 0}svg .grid{stroke:#eee}
svg .axis{stroke:#888}svg .label{fill:#555}svg .onbar{fill:#fff;font-weight:600}.empty{color:#777}.note{color:#555}
"""


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    meta = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in report.meta)
    sections = [f"<h1>{_e(report.title)}</h1><dl>{meta}</dl>",
                "<h2>Chains</h2>", _html_table(*_chain_table(report)),
                "<h3>Score against cost</h3>", score_cost_chart(report),
                "<h3>Latency distribution</h3>", latency_chart(report)]
    if report.pairs:
        sections += ["<h2>Pairwise judge</h2>", _html_table(*_pair_table(report)), verdict_chart(report),
                     f"<p>Judge cost: {_e(_money(report.judge_cost))}</p>"]
    sections += ["<h2>Score by tag</h2>", tag_chart(report)]
    if report.tags:
        sections.append(_html_table(*_tag_table(report)))
    if report.failures:
        sections += ["<h2>Answers that did not come back</h2>", _html_table(*_failure_table(report))]
    if report.problems:
        sections += ["<h2>Dataset lines skipped</h2><ul>", *[f"<li>{_e(p)}</li>" for p in report.problems], "</ul>"]
    sections.append(f'<p class="note">{_e(NOTES)}</p>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(report.title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f'<body>{"".join(sections)}</body></html>\n')

