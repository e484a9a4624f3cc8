"""Chains compared over the audit log: calls, mean tokens, cost, latency, time to first token, thumbs up ratio."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from statistics import mean


@dataclass(frozen=True)
class ChainStats:
    chain: str
    calls: int
    answers: int
    mean_prompt_tokens: float
    mean_completion_tokens: float
    total_cost_usd: Decimal
    mean_latency_ms: float
    mean_ttft_ms: float | None
    failures: int
    thumbs_up: int
    thumbs_down: int
    mean_reasoning_tokens: float = 0.0  # of mean_completion_tokens: the hidden reasoning of reasoning models

    @property
    def thumbs_up_ratio(self) -> float | None:
        votes = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / votes if votes else None


def read_audit(path: Path) -> list[dict]:
    """Records of the current audit file and its rotated predecessors; unreadable lines are skipped."""
    records = []
    for file in sorted(path.parent.glob(path.name + "*")):
        for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def compare_chains(records: list[dict]) -> list[ChainStats]:
    calls: dict[str, list[dict]] = defaultdict(list)
    votes: dict[str, list[int]] = defaultdict(list)
    for record in records:
        if record.get("event") == "model_call" and record.get("purpose") != "embedding":
            calls[record["chain"]].append(record)
        elif record.get("event") == "feedback" and record.get("score") in (0, 1):
            votes[record["chain"]].append(record["score"])
    stats = []
    for chain in sorted(set(calls) | set(votes)):
        rows = calls.get(chain, [])
        ttfts = [r["time_to_first_token_ms"] for r in rows if r.get("time_to_first_token_ms") is not None]
        stats.append(ChainStats(
            chain=chain, calls=len(rows),
            answers=sum(1 for r in rows if r.get("purpose") == "answer"),
            mean_prompt_tokens=mean(r["prompt_tokens"] for r in rows) if rows else 0.0,
            mean_completion_tokens=mean(r["completion_tokens"] for r in rows) if rows else 0.0,
            total_cost_usd=sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0)),
            mean_latency_ms=mean(r["latency_ms"] for r in rows) if rows else 0.0,
            mean_ttft_ms=mean(ttfts) if ttfts else None,
            failures=sum(1 for r in rows if r.get("outcome") not in ("ok", "stopped")),
            thumbs_up=votes[chain].count(1), thumbs_down=votes[chain].count(0),
            mean_reasoning_tokens=mean(r.get("reasoning_tokens") or 0 for r in rows) if rows else 0.0,
        ))
    return stats
