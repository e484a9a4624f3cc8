"""One machine-readable line per measured ratio, so `bench.report` can collect every benchmark into one table."""
from __future__ import annotations


def result(name: str, value: float, target: str, ok: bool | None) -> None:
    verdict = "—" if ok is None else ("met" if ok else "missed")
    print(f"RESULT|{name}|{value:.3f}|{target}|{verdict}", flush=True)
