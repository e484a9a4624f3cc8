"""Chain statistics kept in the database as calls end: the same figures as computing them over the whole audit log,
votes that change counted once, concurrent writers never losing an update (SQLite here, Postgres in integration)."""
from __future__ import annotations

import threading
from decimal import Decimal

from sqlalchemy.engine import Engine

from callbacks.chain_stats import ChainStatistics
from callbacks.experiments import compare_chains
from config.database import database_engine


def call(chain: str, n: int, **changes) -> dict:
    record = {"event": "model_call", "chain": chain, "purpose": "answer" if n % 3 else "draft",
              "prompt_tokens": 100 + n, "completion_tokens": 10 + n % 7, "cost_usd": str(Decimal("0.0000025") * (n + 1)),
              "reasoning_tokens": 2 * (n % 5),  # of the completion tokens (a reasoning model's hidden thinking)
              "latency_ms": 300 + n, "time_to_first_token_ms": None if n % 4 == 0 else 50 + n,
              "outcome": "throttled" if n % 11 == 0 else "ok"}
    record.update(changes)
    return record


def run_chain_stats_contract(engine: Engine) -> None:
    statistics = ChainStatistics(engine)
    records = [call("assistant@1" if n % 2 else "concise@1", n) for n in range(60)]
    records += [{"event": "feedback", "chain": "concise@1", "score": 1, "previous_score": None},
                {"event": "feedback", "chain": "concise@1", "score": 0, "previous_score": None},
                {"event": "sign_in_expired", "chain": "concise@1"}]
    for record in records:
        statistics.record(record)
    expected = compare_chains(records)
    got = statistics.all()
    assert [s.chain for s in got] == [s.chain for s in expected] == ["assistant@1", "concise@1"]
    for mine, theirs in zip(got, expected):
        assert (mine.calls, mine.answers, mine.failures, mine.thumbs_up, mine.thumbs_down) == (
            theirs.calls, theirs.answers, theirs.failures, theirs.thumbs_up, theirs.thumbs_down)
        assert mine.total_cost_usd == theirs.total_cost_usd  # exact, not float-rounded
        assert abs(mine.mean_prompt_tokens - theirs.mean_prompt_tokens) < 1e-9
        assert abs(mine.mean_completion_tokens - theirs.mean_completion_tokens) < 1e-9
        assert abs(mine.mean_reasoning_tokens - theirs.mean_reasoning_tokens) < 1e-9 and mine.mean_reasoning_tokens > 0
        assert abs(mine.mean_latency_ms - theirs.mean_latency_ms) < 1e-9
        assert abs(mine.mean_ttft_ms - theirs.mean_ttft_ms) < 1e-9

    # A changed vote moves from up to down instead of counting twice.
    statistics.record({"event": "feedback", "chain": "concise@1", "score": 0, "previous_score": 1})
    concise = statistics.all()[1]
    assert (concise.thumbs_up, concise.thumbs_down) == (0, 2)

    # Writers racing on a chain whose row does not exist yet: every update lands.
    threads = [threading.Thread(target=lambda: [statistics.record(call("racing@1", 1)) for _ in range(10)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert next(s for s in statistics.all() if s.chain == "racing@1").calls == 40

    # Rebuilding from the audit log gives the same table.
    assert statistics.rebuild(records) == len(records)
    assert [s.calls for s in statistics.all()] == [s.calls for s in expected]


def test_chain_statistics_on_sqlite(tmp_path):
    run_chain_stats_contract(database_engine(None, tmp_path, "conversations.db"))
