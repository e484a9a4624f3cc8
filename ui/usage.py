""""My usage": this month's tokens and cost by deployment and by day, and what is left of the budget. Computed from the
usage ledger when the dialog is opened, never on an ordinary rerun."""
from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine

from config.database import database_engine
from config.settings import Settings
from engine import Asker, TurnEngine
from store.usage import month_of, to_usd
from store.usage_reports import UsageReports, dollars, usd
from ui import services

MONEY = {"cost $": st.column_config.NumberColumn(format="$%.6f")}
# Reasoning tokens are some of the completion tokens, not more of them: the help says so where the column is shown.
REASONING = {"reasoning tokens": st.column_config.NumberColumn(
    help="Of the completion tokens, those a reasoning model spent thinking before it answered: never shown, billed "
         "as output all the same (already in the cost).")}
# Cost per day, stacked by deployment (a Vega-Lite spec written out: Streamlit's chart helpers go through Altair,
# whose schema validation costs about 0.1 s a chart).
COST_PER_DAY = {
    "mark": {"type": "bar", "tooltip": True},
    "encoding": {"x": {"field": "day", "type": "ordinal", "title": "day (UTC)"},
                 "y": {"field": "cost", "type": "quantitative", "title": "cost ($)", "stack": "zero"},
                 "color": {"field": "deployment", "type": "nominal"}},
}


@functools.cache  # per process, never cleared by a page (ui/services.py says why)
def _sign_in_database(database_url: str | None, data_dir: str) -> Engine:
    # Where auth/services.py keeps the sign-in sessions: the same Postgres, or SQLite's sessions.db.
    if database_url:
        return services._database(database_url, data_dir)
    return database_engine(None, Path(data_dir), "sessions.db")


@functools.cache  # per process, never cleared by a page (ui/services.py says why)
def _reports(database_url: str | None, data_dir: str) -> UsageReports:
    return UsageReports(services._database(database_url, data_dir), _sign_in_database(database_url, data_dir))


def report_key(settings: Settings) -> tuple[str | None, str]:
    """Which database the reports read (a cache key)."""
    return services._database_key(settings)


def usage_reports(settings: Settings) -> UsageReports:
    """Reports over the usage ledger's tables, with names from the sign-in sessions."""
    return _reports(*report_key(settings))


def shown(frame: pd.DataFrame) -> pd.DataFrame:
    """Measures as people read them: tokens per kind (reasoning tokens: of the completion tokens) and dollars."""
    return (frame.assign(**{"cost $": usd(frame["cost_nanousd"])}).drop(columns=["cost_nanousd"])
            .rename(columns={"prompt_tokens": "prompt tokens", "completion_tokens": "completion tokens",
                             "reasoning_tokens": "reasoning tokens"}))


def cost_per_day(by_day: pd.DataFrame) -> pd.DataFrame:
    """Rows of (day, deployment, cost in dollars) for COST_PER_DAY."""
    return pd.DataFrame({"day": by_day["day"].astype(str), "deployment": by_day["deployment"],
                         "cost": usd(by_day["cost_nanousd"])})


def usage_button(settings: Settings, engine: TurnEngine, who: Asker) -> None:
    if engine.usage is None:
        return
    with st.sidebar:
        if st.button("My usage", icon=":material/payments:", key="open_my_usage"):
            _my_usage(settings, engine, who)


@st.dialog("My usage this month", width="large")
def _my_usage(settings: Settings, engine: TurnEngine, who: Asker) -> None:
    ledger, owner = engine.usage, who.owner
    budget = engine.budget(who)
    state = ledger.state(owner.oid, owner.tenant_id, budget)
    month = month_of(ledger.clock())
    spent, left = st.columns(2)
    spent.metric("Spent this month", dollars(state.spent_nanousd),
                 help=f"Exactly ${to_usd(state.spent_nanousd)} in {month} (months are UTC).")
    if budget is None:
        left.metric("Budget left", "no limit")
    else:
        held = f"; {dollars(state.reserved_nanousd)} is held for answers in progress" if state.reserved_nanousd else ""
        left.metric("Budget left", dollars(max(state.left_nanousd, 0)),
                    help=f"Of a monthly budget of {dollars(budget)}{held}.")
        st.progress(min(state.used_share, 1.0), text=f"{min(state.used_share, 1):.0%} of {dollars(budget)} used; "
                    f"the budget resets on {state.resets_at:%d %B %Y} (UTC).")
    by_deployment, by_day = usage_reports(settings).person_month(owner.oid, owner.tenant_id, month)
    if by_deployment.empty:
        st.caption("No model calls yet this month.")
        return
    tokens = int(by_deployment["prompt_tokens"].sum() + by_deployment["completion_tokens"].sum())
    reasoning = int(by_deployment["reasoning_tokens"].sum())  # part of the completion tokens, not added to them
    hidden = f" ({reasoning:,} of them hidden reasoning)" if reasoning else ""
    st.caption(f"{int(by_deployment['calls'].sum()):,} model calls and {tokens:,} tokens{hidden} this month: answers, "
               "memory summaries and drafts all count.")
    st.dataframe(shown(by_deployment), hide_index=True, column_config={**MONEY, **REASONING})
    st.vega_lite_chart(cost_per_day(by_day), COST_PER_DAY, height=220)
