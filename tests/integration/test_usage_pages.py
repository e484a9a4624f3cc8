"""Cost management on the page (AppTest, a real sign-in, real emulators): "My usage" after a chat turn, and the
administration page at /admin (totals equal to SQL sums, filters, the CSV export, budget overrides) for an
administrator, refused and audited for anyone else. The report queries also run on a real Postgres."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, text

from auth.security_context import SecurityContext
from config.database import database_engine
from engine import Asker, TurnEngine
from localdev.stack import TENANT_ID, TEST_USER
from memory.store import ConversationStore, Owner
from store.base import Base
from store.usage import UsageLedger, month_of, to_nano, to_usd
from store.usage_reports import EXPORT_COLUMNS, UsageFilter, UsageReports, dollars
from tests.integration.apptest import open_page
from tests.integration.test_file_routes import file_client, link_in
from tests.postgres import running_postgres, server_binaries

ADA = Owner(TEST_USER.oid, TENANT_ID)
OTHER_TENANT = "11111111-2222-4333-8444-555555555555"
BOB, CAROL = "0b0b0b0b-0000-4000-8000-000000000001", "0c0c0c0c-0000-4000-8000-000000000002"


def button(at, label):
    return next(b for b in at.button if b.label == label)


def table(at, key):
    return at.get_by_key(key).dataframe[0].value


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def database(settings):
    return database_engine(None, settings.app.data_dir, "conversations.db")


def audit_records(settings, event):
    lines = (settings.app.data_dir / "audit" / "audit.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def someone_elses_usage(engine, month: str) -> None:
    """Usage of two more people (one in another tenant) this month, and of Ada in an old month, as the ledger writes
    it."""
    UsageLedger(engine)
    now = datetime.now(timezone.utc)
    rows = []
    for n, (oid, tenant, deployment, chain) in enumerate([
            (BOB, TENANT_ID, "gpt-4o-mini", "concise@1"), (BOB, TENANT_ID, "gpt-4o", "assistant@1"),
            (CAROL, OTHER_TENANT, "gpt-4o", "assistant@1"), (CAROL, OTHER_TENANT, "gpt-4o", "assistant@1")]):
        rows.append(dict(at=now, day=now.date(), month=month, oid=oid, tenant=tenant, deployment=deployment,
                         chain=chain, purpose="answer", outcome="ok", prompt_tokens=100 * (n + 1),
                         completion_tokens=10 * (n + 1), cost_nanousd=1_234_567 * (n + 1), conversation_id=None))
    rows.append(dict(rows[0], oid=ADA.oid, day=date(2001, 1, 31), month="2001-01"))  # an old month: never counted
    with engine.begin() as db:
        db.execute(insert(Base.metadata.tables["usage_records"]), rows)


def sql_sums(engine, where: str = "", **params) -> dict:
    query = ("SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
             f"COALESCE(SUM(cost_nanousd), 0), COUNT(DISTINCT oid) FROM usage_records WHERE month = :month {where}")
    with engine.connect() as db:
        calls, prompt, completion, cost, people = db.execute(text(query), params).one()
    return dict(calls=int(calls), tokens=int(prompt) + int(completion), cost=int(cost), people=int(people))


def shown_totals(at) -> dict:
    def number(label):
        return int(metric(at, label).replace(",", ""))

    return dict(calls=number("Model calls"), tokens=number("Tokens"), cost=metric(at, "Cost"), people=number("People"))


def expected(sums: dict) -> dict:
    return {**sums, "cost": dollars(sums["cost"])}


def ada_budget(settings, ledger) -> int | None:
    """Ada's monthly budget as the turn engine works it out (override, role budgets, default)."""
    who = Asker(ADA, SecurityContext(settings.app.name), "s", token_provider=lambda: None,
                roles=frozenset(TEST_USER.roles))
    return TurnEngine(settings, ConversationStore(database(settings)), None, usage=ledger).budget(who)


def as_admin(monkeypatch):
    monkeypatch.setenv("APP_ADMIN_ROLE", "Chat.Experimenter")  # a role Ada holds in the emulated tenant


def admin_page(at):
    at.switch_page("admin.py").run()
    assert not at.exception, at.exception
    return at


def test_my_usage_shows_this_months_cost_and_the_budget_left(signed_in, settings, emulators):
    at = open_page()
    at.chat_input(key="draft").set_value("What does this cost?").run()
    assert not at.exception, at.exception
    assert not at.metric  # nothing computed on an ordinary rerun
    button(at, "My usage").click().run()
    assert not at.exception, at.exception

    ledger = UsageLedger(database(settings))
    state = ledger.state(ADA.oid, ADA.tenant_id, ada_budget(settings, ledger))
    assert state.spent_nanousd > 0 and state.budget_nanousd
    assert metric(at, "Spent this month") == dollars(state.spent_nanousd)
    assert metric(at, "Budget left") == dollars(state.left_nanousd)
    by_deployment = at.dataframe[-1].value
    assert list(by_deployment["deployment"]) == [settings.catalog.default]
    assert round(by_deployment["cost $"].sum() * 1e9) == state.spent_nanousd
    # gpt-5-mini bills hidden reasoning as output: My usage says how much of the completion it was.
    assert int(by_deployment["reasoning tokens"].sum()) == 256
    assert at.get("vega_lite_chart")  # the cost per day

    at.run()  # an ordinary rerun closes the dialog: nothing is computed
    assert not at.metric


def test_the_admin_page_totals_filters_export_and_budget_overrides(signed_in, settings, emulators, monkeypatch):
    as_admin(monkeypatch)
    at = open_page()
    at.chat_input(key="draft").set_value("Hello admin").run()
    engine = database(settings)
    month = month_of(datetime.now(timezone.utc))
    someone_elses_usage(engine, month)

    admin_page(at)
    assert at.title[0].value == "Usage administration"
    assert shown_totals(at) == expected(sql_sums(engine, month=month))
    assert shown_totals(at)["people"] == 3
    top = table(at, "admin_top")
    assert list(top["oid"])[0] == CAROL  # the biggest spender first
    assert top.loc[top["oid"] == ADA.oid, "name"].item() == TEST_USER.name  # from her sign-in session
    assert at.get("vega_lite_chart")

    # Filters narrow every figure to the matching rows.
    at.selectbox(key="admin_deployment").set_value("gpt-4o").run()
    assert shown_totals(at) == expected(sql_sums(engine, "AND deployment = 'gpt-4o'", month=month))
    at.selectbox(key="admin_tenant").set_value(OTHER_TENANT).run()
    assert shown_totals(at) == expected(sql_sums(engine, "AND deployment = 'gpt-4o' AND tenant = :t", month=month,
                                                 t=OTHER_TENANT))
    assert list(table(at, "admin_people")["oid"]) == [CAROL]
    at.selectbox(key="admin_deployment").set_value("All")
    at.selectbox(key="admin_tenant").set_value("All").run()
    at.text_input(key="admin_person").input("lovelace").run()  # by display name
    assert shown_totals(at) == expected(sql_sums(engine, "AND oid = :oid", month=month, oid=ADA.oid))
    at.text_input(key="admin_person").input(BOB[:8]).run()  # by part of the object id
    assert shown_totals(at) == expected(sql_sums(engine, "AND oid = :oid", month=month, oid=BOB))
    at.text_input(key="admin_person").input("").run()

    # The CSV export: the filtered usage per person, day, deployment and chain, with the same totals.
    at.selectbox(key="admin_chain").set_value("assistant@1").run()
    export = at.get_by_key("admin_export").markdown[0].value
    assert ">Download CSV</a>" in export and " download " in export
    href = link_in(export)  # a link for this session and this filter, followed by Ada's browser
    assert href.startswith("/exports/")
    assert not audit_records(settings, "usage_exported")  # nothing is built before the link is followed
    response = file_client(settings, signed_in.session_id, admin_role="Chat.Experimenter").get(href)
    assert response.headers["content-disposition"] == f'attachment; filename="usage-{month}.csv"'
    assert response.headers["cache-control"] == "private, no-store"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    sums = sql_sums(engine, "AND chain = 'assistant@1'", month=month)
    assert sum(int(r["calls"]) for r in rows) == sums["calls"]
    assert sum(int(r["prompt_tokens"]) + int(r["completion_tokens"]) for r in rows) == sums["tokens"]
    assert sum(Decimal(r["cost_usd"]) for r in rows) == to_usd(sums["cost"])
    assert {r["chain"] for r in rows} == {"assistant@1"} and {r["month"] for r in rows} == {month}
    assert len({(r["oid"], r["day"], r["deployment"], r["chain"]) for r in rows}) == len(rows)
    assert {r["name"] for r in rows if r["oid"] == ADA.oid} == {TEST_USER.name}
    (exported,) = audit_records(settings, "usage_exported")
    assert exported["chain"] == "assistant@1" and exported["rows"] == len(rows)

    # A budget override: validated, saved, audited, and the engine applies it.
    at.text_input(key="override_oid").input("not-a-guid")
    at.text_input(key="override_amount").input("25")
    at.button(key="override_save").click().run()
    assert any("must be a GUID" in e.value for e in at.error)
    at.text_input(key="override_oid").input(ADA.oid.upper())
    at.text_input(key="override_amount").input("-3")
    at.button(key="override_save").click().run()
    assert any("zero or more" in e.value for e in at.error)
    at.text_input(key="override_amount").input("12.50")
    at.button(key="override_save").click().run()
    assert not at.error and not at.exception, (at.error, at.exception)
    ledger = UsageLedger(engine)
    assert ledger.override(ADA.oid, ADA.tenant_id) == to_nano("12.50")
    assert ada_budget(settings, ledger) == to_nano("12.50")  # the engine holds her next message against it
    (record,) = audit_records(settings, "budget_override_set")
    assert (record["target_oid"], record["target_tenant"], record["budget_usd"], record["previous_usd"]) == \
        (ADA.oid, ADA.tenant_id, "12.50", None)
    assert record["user_oid"] == ADA.oid  # who set it
    overrides = table(at, "admin_overrides")
    assert list(overrides["oid"]) == [ADA.oid] and list(overrides["monthly budget $"]) == [12.5]
    everyone = table(at, "admin_people").set_index("oid")
    assert everyone.loc[ADA.oid, "budget override $"] == 12.5  # in the same run

    at = open_page()  # the chat (a callable page: AppTest cannot switch to it): "My usage" shows the override
    button(at, "My usage").click().run()
    state = ledger.state(ADA.oid, ADA.tenant_id, to_nano("12.50"))
    assert metric(at, "Budget left") == dollars(state.left_nanousd)

    admin_page(at)
    at.text_input(key="override_oid").input(ADA.oid)
    at.text_input(key="override_amount").input("")
    at.button(key="override_save").click().run()  # empty: the override is removed
    assert ledger.override(ADA.oid, ADA.tenant_id) is None
    assert ada_budget(settings, ledger) == to_nano(settings.app.monthly_budget_usd)


def test_the_admin_menu_is_for_administrators_only(signed_in, settings, monkeypatch):
    """Both pages are registered for everyone (so /admin can refuse by itself); the menu shows for administrators."""
    import streamlit

    calls = []
    original = streamlit.navigation

    def navigation(pages, **kwargs):
        calls.append(([p.url_path for p in pages], kwargs.get("position")))
        return original(pages, **kwargs)

    monkeypatch.setattr(streamlit, "navigation", navigation)
    open_page()
    assert calls[-1] == (["", "admin"], "hidden")
    as_admin(monkeypatch)
    open_page()
    assert calls[-1] == (["", "admin"], "sidebar")


def test_someone_without_the_role_is_refused_and_audited(signed_in, settings, monkeypatch):
    monkeypatch.setenv("APP_ADMIN_ROLE", "Chat.Admin")  # a role Ada does not hold
    at = admin_page(open_page())
    assert not at.title or at.title[0].value != "Usage administration"
    assert any("requires the 'Chat.Admin' app role" in e.value for e in at.error)
    assert not at.metric and not at.dataframe and not at.get("download_button")
    assert not any("/exports/" in m.value for m in at.markdown)  # no CSV link either
    (record,) = audit_records(settings, "admin_access_denied")
    assert record["user_oid"] == ADA.oid and record["required_role"] == "Chat.Admin"
    assert record["outcome"] == "refused"


@pytest.mark.skipif(server_binaries() is None, reason="Debian's postgresql is not installed")
def test_the_report_queries_on_postgres(tmp_path):
    with running_postgres() as url:
        engine = database_engine(url, tmp_path, "unused.db")
        month = month_of(datetime.now(timezone.utc))
        someone_elses_usage(engine, month)
        reports = UsageReports(engine)
        everyone = UsageFilter(month)
        cube, people = reports.cube(everyone), reports.people(everyone)
        sums = sql_sums(engine, month=month)
        assert int(cube["cost_nanousd"].sum()) == sums["cost"] == int(people["cost_nanousd"].sum())
        assert int(cube["calls"].sum()) == sums["calls"] and len(people) == sums["people"] == 2
        assert reports.months(datetime.now(timezone.utc))[-1] == "2001-01"
        narrowed = reports.people(UsageFilter(month, deployment="gpt-4o", person=CAROL[:6]))
        assert list(narrowed["oid"]) == [CAROL]
        text_, count = reports.export_csv(UsageFilter(month, tenant=OTHER_TENANT))
        rows = list(csv.DictReader(io.StringIO(text_)))
        assert count == len(rows) == 1 and Decimal(rows[0]["cost_usd"]) == to_usd(1_234_567 * 7)
        UsageLedger(engine).set_override(BOB, TENANT_ID, Decimal("3"), "admin")
        assert reports.people(everyone).set_index("oid").loc[BOB, "override_nanousd"] == to_nano(3)
        mine, daily = reports.person_month(BOB, TENANT_ID, month)
        assert list(mine["deployment"]) == ["gpt-4o", "gpt-4o-mini"] and int(daily["calls"].sum()) == 2
