"""Budgets and rate limits through the turn engine with fake models: the boundary is exact to the cent, two replicas
sending at once cannot both spend the last of a budget, the month resets (injected clock), 80% warns, per-minute limits
hold across replicas, and usage rows are written with the turn (or without it when storing fails)."""
from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, text

from engine import Blocked, BudgetNotice, NewMessage, Outcome, TurnEngine
from memory.conversation import Conversation
from memory.store import ConversationStore
from store.files import FileStore
from store.usage import UsageLedger, to_nano
from tests.unit.test_turn_engine import OWNER, WHO, choices, rig, settings  # noqa: F401 - pytest fixtures, used by name


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment

    def __call__(self) -> datetime:
        return self.now


def replica(rig, tmp_path, clock, **app):
    """An engine on the rig's database file, as a second replica would have (its own engine, store and ledger)."""
    database = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", connect_args={"timeout": 30})
    settings_ = rig.settings.model_copy(update={"app": rig.settings.app.model_copy(update=app)})
    return TurnEngine(settings_, ConversationStore(database, FileStore(tmp_path / "images")), rig.engine.audit,
                      model_factory=rig.engine.model_factory, usage=UsageLedger(database, clock))


def send(engine, text_="What does this cost?", conversation=None):
    return list(engine.run(WHO, conversation or Conversation(), NewMessage(text_), choices(engine.settings)))


def refused(rig, event):
    return [r for r in rig.audit.records if r["event"] == event]


@pytest.fixture
def clock():
    return Clock(datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc))


def test_one_cent_under_the_estimate_blocks_and_one_cent_over_sends(rig, tmp_path, clock):
    probe = replica(rig, tmp_path, clock, monthly_budget_usd=Decimal(0))
    [blocked] = send(probe)
    assert isinstance(blocked, Blocked) and blocked.reason == "over_budget"
    estimate = Decimal(refused(rig, "budget_refused")[-1]["estimate_usd"])
    assert estimate > 0 and "resets on 01 December 2026 (UTC)" in blocked.message
    assert blocked.draft == "What does this cost?" and rig.script.calls == []

    under = replica(rig, tmp_path, clock, monthly_budget_usd=estimate - Decimal("0.01"))
    assert isinstance(send(under)[-1], Blocked)
    rig.script.answers.append("It costs little.")
    over = replica(rig, tmp_path, clock, monthly_budget_usd=estimate + Decimal("0.01"))
    assert isinstance(send(over)[-1], Outcome)


def test_two_replicas_sending_at_once_cannot_both_spend_the_last_of_the_budget(rig, tmp_path, clock):
    probe = replica(rig, tmp_path, clock, monthly_budget_usd=Decimal(0))
    send(probe)
    estimate = Decimal(refused(rig, "budget_refused")[-1]["estimate_usd"])
    budget = estimate * Decimal("1.5")  # room for one turn, not two
    replicas = [replica(rig, tmp_path, clock, monthly_budget_usd=budget) for _ in range(2)]
    rig.script.answers += ["one", "two"]
    start, ends = threading.Barrier(2), [None, None]
    # Both reservations are attempted before either turn goes on: otherwise one turn can finish (and settle its real
    # cost, far under its estimate) before the other even asks, and then both fit.
    reserved = threading.Barrier(2)
    for each in replicas:
        def reserve(*args, _reserve=each.usage.reserve, **kwargs):
            try:
                return _reserve(*args, **kwargs)
            finally:
                reserved.wait(timeout=60)
        each.usage.reserve = reserve

    def run(index: int) -> None:
        start.wait()
        ends[index] = send(replicas[index], "At the same moment")[-1]

    workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)  # generous: a loaded machine (the suite beside a build) is slow, not wrong
    assert not any(worker.is_alive() for worker in workers), "a replica's turn never ended"
    assert sorted(type(e).__name__ for e in ends) == ["Blocked", "Outcome"], ends
    ledger = replicas[0].usage
    state = ledger.state(OWNER.oid, OWNER.tenant_id, to_nano(budget))
    assert state.reserved_nanousd == 0 and 0 < state.spent_nanousd <= to_nano(budget)  # released with the real cost


def test_the_budget_resets_with_the_month_and_warns_from_80_percent(rig, tmp_path, clock):
    engine = replica(rig, tmp_path, clock, monthly_budget_usd=Decimal("0.01"))
    ledger = engine.usage
    ledger.ensure_month(OWNER.oid, OWNER.tenant_id, "2026-11")
    ledger.record_now(OWNER.oid, OWNER.tenant_id, [{"event": "model_call", "cost_usd": "0.0085", "deployment": "gpt-4o",
                                                   "chain": "assistant@1", "purpose": "answer"}])
    rig.script.answers += ["a", "b"]
    events = send(engine, "Hi")
    assert isinstance(events[-1], Blocked) and events[-1].reason == "over_budget"  # 0.0015 left, the turn costs more
    clock.now = datetime(2026, 12, 1, 0, 0, 5, tzinfo=timezone.utc)  # a new month
    events = send(engine, "Hi")
    assert isinstance(events[-1], Outcome)
    warned = replica(rig, tmp_path, clock, monthly_budget_usd=Decimal("0.006"))  # this turn takes it past 80%
    events = send(warned, "Hi")
    notices = [e for e in events if isinstance(e, BudgetNotice)]
    assert notices and "of your monthly budget" in notices[0].text and "01 January 2027" in notices[0].text
    assert refused(rig, "budget_warning")


def test_rate_limits_hold_across_replicas_and_reopen_next_minute(rig, tmp_path, clock):
    first, second = (replica(rig, tmp_path, clock, rate_limit_requests_per_minute=2) for _ in range(2))
    rig.script.answers += ["1", "2", "3"]
    assert isinstance(send(first)[-1], Outcome) and isinstance(send(second)[-1], Outcome)
    [blocked] = send(first)
    assert blocked.reason == "rate_limited" and "Try again at 12:01:00 UTC" in blocked.message
    assert refused(rig, "rate_limited")[-1]["limit"] == "requests"
    clock.now = clock.now.replace(minute=1)
    assert isinstance(send(second)[-1], Outcome)

    tokens = replica(rig, tmp_path, clock, rate_limit_tokens_per_minute=100)  # less than one answer limit
    [blocked] = send(tokens)
    assert "100 tokens per minute" in blocked.message


def test_usage_rows_are_written_with_the_turn_and_even_when_storing_fails(rig, tmp_path, clock, monkeypatch):
    engine = replica(rig, tmp_path, clock)
    rig.script.answers += ["stored", "not stored"]
    send(engine)
    with engine.store._engine.connect() as db:
        rows = db.execute(text("select oid, deployment, chain, purpose, cost_nanousd, month from usage_records")).all()
    assert [(r.oid, r.deployment, r.chain, r.purpose, r.month) for r in rows] == [
        (OWNER.oid, "gpt-4o", "assistant@1", "answer", "2026-11")]
    spent = engine.usage.state(OWNER.oid, OWNER.tenant_id, None).spent_nanousd
    assert spent == rows[0].cost_nanousd > 0

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(engine.store, "commit_turn", broken)
    outcome = send(engine)[-1]
    assert not outcome.saved
    state = engine.usage.state(OWNER.oid, OWNER.tenant_id, None)
    assert state.spent_nanousd > spent and state.reserved_nanousd == 0


def test_stop_before_the_answer_gives_the_reservation_back(rig, tmp_path, clock):
    engine = replica(rig, tmp_path, clock)
    events = engine.run(WHO, Conversation(), NewMessage("Stop at once"), choices(engine.settings))
    next(event for event in events if type(event).__name__ == "Accepted")
    events.close()
    assert engine.usage.state(OWNER.oid, OWNER.tenant_id, None).reserved_nanousd == 0


def test_role_budgets_and_overrides(rig, tmp_path, clock):
    engine = replica(rig, tmp_path, clock, monthly_budget_usd=Decimal(5), role_budgets={"Chat.Power": Decimal(200)})
    assert engine.budget(WHO) == to_nano(5)
    power = replace(WHO, roles=frozenset({"Chat.Power"}))
    assert engine.budget(power) == to_nano(200)
    engine.usage.set_override(OWNER.oid, OWNER.tenant_id, Decimal("7.5"), set_by="oid-admin")
    assert engine.budget(power) == to_nano("7.5")
    engine.usage.set_override(OWNER.oid, OWNER.tenant_id, None, set_by="oid-admin")
    assert engine.budget(WHO) == to_nano(5)


def test_reasoning_tokens_are_kept_and_summed_per_month_and_person_apart_from_the_cost(tmp_path, clock):
    """A reasoning model's hidden tokens: in each usage row, summed by the reports per person and month (My usage,
    the administration page, its CSV), part of the completion tokens and never priced a second time."""
    from config.catalog import load_catalog
    from config.database import database_engine
    from engine.turn import usage_of
    from localdev import LOCAL_CATALOG_FILE
    from store.usage_reports import UsageFilter, UsageReports, totals

    gpt5 = load_catalog(LOCAL_CATALOG_FILE).get("gpt-5-mini")

    def model_call(prompt, completion, reasoning, purpose="answer"):
        record = {"event": "model_call", "deployment": "gpt-5-mini", "chain": "assistant@1", "purpose": purpose,
                  "outcome": "ok", "prompt_tokens": prompt, "completion_tokens": completion,
                  "cost_usd": str(gpt5.cost(prompt, completion)), "usage_estimated": False}
        if reasoning is not None:  # None: a record written before reasoning tokens were audited
            record["reasoning_tokens"] = reasoning
        return record

    engine = database_engine(None, tmp_path, "conversations.db")
    ledger, bob = UsageLedger(engine, clock), ("bob-oid", OWNER.tenant_id)
    adas = [model_call(200, 1000, 880), model_call(150, 300, 120, "summary"), model_call(40, 0, None, "embedding")]
    ledger.record_now(OWNER.oid, OWNER.tenant_id, adas)
    ledger.record_now(*bob, [model_call(100, 90, 50), model_call(10, 5, None)])
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    ledger.record_now(OWNER.oid, OWNER.tenant_id, [model_call(20, 30, 10)])

    turn = usage_of(adas)
    assert (turn.completion_tokens, turn.reasoning_tokens) == (1300, 1000)
    assert turn.cost_usd == gpt5.cost(200, 1000) + gpt5.cost(150, 300) + gpt5.cost(40, 0)  # reasoning priced once
    from engine.comparison import _combined
    from memory.conversation import Turn
    sides = [Turn("assistant", "a", usage=turn), Turn("assistant", "b", usage=usage_of([model_call(9, 60, 48)]))]
    assert _combined(sides).reasoning_tokens == 1048  # a side-by-side pair's usage: both sides' reasoning

    reports = UsageReports(engine)
    by_deployment, by_day = reports.person_month(OWNER.oid, OWNER.tenant_id, "2026-11")
    assert by_deployment.loc[0, ["completion_tokens", "reasoning_tokens"]].tolist() == [1300, 1000]
    assert int(by_day["reasoning_tokens"].sum()) == 1000
    december, _ = reports.person_month(OWNER.oid, OWNER.tenant_id, "2026-12")
    assert december["reasoning_tokens"].tolist() == [10]
    november = UsageFilter("2026-11")
    people = reports.people(november).set_index("oid")
    assert people.loc[OWNER.oid, "reasoning_tokens"] == 1000 and people.loc["bob-oid", "reasoning_tokens"] == 50
    cube, _ = reports.overview(november)
    assert totals(cube)["reasoning_tokens"] == 1050 and totals(cube)["completion_tokens"] == 1395
    november_cost = sum(to_nano(gpt5.cost(p, c)) for p, c in ((200, 1000), (150, 300), (40, 0), (100, 90), (10, 5)))
    assert totals(cube)["cost_nanousd"] == november_cost  # the completion tokens' price: reasoning is in them
    csv_text, _ = reports.export_csv(november)
    header, *lines = csv_text.splitlines()
    column = header.split(",").index("reasoning_tokens")
    assert sum(int(line.split(",")[column]) for line in lines) == 1050
