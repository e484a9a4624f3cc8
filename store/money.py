"""Money as the tables keep it: whole nano-dollars (integers add exactly, in SQL too)."""
from __future__ import annotations

from decimal import Decimal

NANO = Decimal(1_000_000_000)


def to_nano(usd: Decimal | str | float) -> int:
    return int(Decimal(str(usd)) * NANO)


def to_usd(nano: int) -> Decimal:
    return Decimal(nano) / NANO
