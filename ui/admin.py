"""The usage administration page (/admin), for people with the app role APP_ADMIN_ROLE: usage by person, tenant,
deployment, chain and day, the top spenders, a CSV export and per-person budget overrides.

Everyone can open /admin by its URL; the role is checked here, on the server, on every run, and a refusal is audited.
This file is also the page script st.navigation runs (ui/page.py), hence the `__main__` block at the end.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from auth.services import AuthServices, auth_services
from auth.sessions import AuthSession
from callbacks.audit import AuditContext, AuditLog
from config import current_settings
from config.settings import Settings
from store.usage import UsageLedger, to_usd
from store.usage_reports import (
    UsageFilter,
    UsageReports,
    dollars,
    names_of,
    parse_budget,
    parse_object_id,
    roll_up,
    totals,
    usd,
)
from ui.data_rights import download_link
from ui.services import asker, audit_log, file_links, usage_ledger
from ui.session import LOCAL_EXPERIMENT, access_denied_screen, current_session, link, sign_in_screen
from ui.styles import accessible_styles
from ui.usage import COST_PER_DAY, MONEY, REASONING, cost_per_day, report_key, shown, usage_reports

REPORT_SECONDS = 60  # an administrator's figures may be this old; "Refresh" reads them again at once
ALL = "All"
TOP_SPENDERS = 10


def admin_page() -> None:
    settings = current_settings()  # the entrypoint has read them in this run already: they are valid
    services, session = _signed_in(settings)
    audit = audit_log(settings)
    if settings.app.admin_role not in session.identity.roles:
        audit.event("admin_access_denied", admin_context(settings, services, session), outcome="refused",
                    page="admin", required_role=settings.app.admin_role)
        access_denied_screen(settings.app.name, session.identity.display_name,
                             f"the usage administration page requires the '{settings.app.admin_role}' app role. "
                             "Ask an administrator.")
        link("Back to the chat", "/")
        st.stop()
    st.set_page_config(layout="wide")  # the tables are wide; the chat keeps its centred column
    reports, ledger, key = usage_reports(settings), usage_ledger(settings), report_key(settings)
    context = admin_context(settings, services, session)
    st.title("Usage administration")
    accessible_styles()
    usage = _filters(reports, ledger, key)
    overview = st.container()
    by_day, by_person, by_part, budgets = st.tabs(["By day", "By person", "By deployment, chain and tenant",
                                                   "Budgets"])
    with budgets:  # first, so that an override saved in this run shows in this run's figures
        _budgets(reports, ledger, audit, context, session)
    cube, people = _figures(reports, key, usage)
    with overview:
        _overview(cube, people)
    with by_day:
        _days(cube)
    with by_person:
        _people_table(people, _names(reports, key, tuple(people["oid"])))
        _export(settings, session, usage)
    with by_part:
        _parts(cube)


# -- who ---------------------------------------------------------------------------------------------------------------
def _signed_in(settings: Settings) -> tuple[AuthServices | None, AuthSession]:
    """The signed-in person (the entrypoint has shown the sign-in screen to anyone else before this page runs)."""
    if settings.app.auth_disabled:
        return None, LOCAL_EXPERIMENT
    services = auth_services(settings)
    session = current_session(services)
    if session is None:
        sign_in_screen(settings.app.name)
        st.stop()
    return services, session


def admin_context(settings: Settings, services: AuthServices | None, session: AuthSession) -> AuditContext:
    """Who did an administrative thing, from where (no conversation, chain or deployment is involved)."""
    who = asker(settings, services, session, "app")
    return AuditContext(user_oid=who.owner.oid, tenant_id=who.owner.tenant_id,
                        source_ip=who.security_context.source_ip, session=who.session_ref, conversation_id="",
                        chain="", deployment="", identity_mode="app", origin="admin")


# -- figures, cached briefly per database and filter -------------------------------------------------------------------
@st.cache_data(ttl=REPORT_SECONDS, max_entries=64, show_spinner=False)
def _figures(_reports: UsageReports, key: tuple, usage: UsageFilter) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _reports.overview(usage)


@st.cache_data(ttl=REPORT_SECONDS, max_entries=64, show_spinner=False)
def _names(_reports: UsageReports, key: tuple, oids: tuple[str, ...]) -> dict[str, str]:
    return _reports.names(list(oids))


def _refresh() -> None:
    for cached in (_figures, _names):
        cached.clear()


# -- the page's parts --------------------------------------------------------------------------------------------------
def _filters(reports: UsageReports, ledger: UsageLedger, key: tuple) -> UsageFilter:
    month_column, deployment_column, chain_column, tenant_column, person_column = st.columns([1, 1, 1, 1.2, 1.4])
    month = month_column.selectbox("Month (UTC)", reports.months(ledger.clock()), key="admin_month")
    options, _ = _figures(reports, key, UsageFilter(month))  # the whole month's values, whatever is picked
    deployment = deployment_column.selectbox("Deployment", [ALL, *sorted(options["deployment"].unique())],
                                             key="admin_deployment")
    chain = chain_column.selectbox("Chain", [ALL, *sorted(options["chain"].unique())], key="admin_chain")
    tenant = tenant_column.selectbox("Tenant", [ALL, *sorted(options["tenant"].unique())], key="admin_tenant")
    person = person_column.text_input("Person", key="admin_person", placeholder="name or object id",
                                      max_chars=120).strip()
    st.button("Refresh", icon=":material/refresh:", key="admin_refresh", on_click=_refresh,
              help=f"Figures are read again at most every {REPORT_SECONDS} seconds; this reads them now.")
    return UsageFilter(month, None if deployment == ALL else deployment, None if chain == ALL else chain,
                       None if tenant == ALL else tenant, person or None,
                       reports.oids_named(person) if person else ())


def _overview(cube: pd.DataFrame, people: pd.DataFrame) -> None:
    sums = totals(cube)
    cost, calls, tokens, persons = st.columns(4)
    cost.metric("Cost", dollars(sums["cost_nanousd"]), help=f"Exactly ${to_usd(sums['cost_nanousd'])}.")
    calls.metric("Model calls", f"{sums['calls']:,}")
    tokens.metric("Tokens", f"{sums['prompt_tokens'] + sums['completion_tokens']:,}",
                  help=f"{sums['prompt_tokens']:,} prompt and {sums['completion_tokens']:,} completion tokens, "
                       f"{sums['reasoning_tokens']:,} of them hidden reasoning (billed as output).")
    persons.metric("People", f"{len(people):,}")
    if cube.empty:
        st.info("No usage matches these filters.", icon=":material/filter_alt_off:")


def _days(cube: pd.DataFrame) -> None:
    if cube.empty:
        return
    st.vega_lite_chart(cost_per_day(roll_up(cube, ["day", "deployment"])), COST_PER_DAY, height=280)
    tokens = roll_up(cube, "day")
    st.vega_lite_chart(tokens.assign(day=tokens["day"].astype(str)), TOKENS_PER_DAY, height=220)


def _people_table(people: pd.DataFrame, names: dict[str, str]) -> None:
    if people.empty:
        return
    named = people.assign(name=names_of(people["oid"], names),
                          **{"budget override $": usd(people["override_nanousd"].astype("Float64"))})
    named = shown(named.drop(columns=["override_nanousd"]))
    columns = ["name", "oid", "tenant", "calls", "prompt tokens", "completion tokens", "reasoning tokens", "cost $",
               "budget override $"]
    override = {"budget override $": st.column_config.NumberColumn(format="$%.2f"), **REASONING}
    st.header("Top spenders")  # h2: headings go down one level at a time from the page title
    st.container(key="admin_top").dataframe(named[columns].head(TOP_SPENDERS), hide_index=True,
                                            column_config={**MONEY, **override})
    st.header(f"Everyone ({len(named):,})")
    st.container(key="admin_people").dataframe(named[columns], hide_index=True, column_config={**MONEY, **override})


def _parts(cube: pd.DataFrame) -> None:
    if cube.empty:
        return
    for part in ("deployment", "chain", "tenant"):
        rows = roll_up(cube, part)
        st.header(f"By {part}")
        left, right = st.columns([1, 1])
        left.container(key=f"admin_by_{part}").dataframe(shown(rows), hide_index=True,
                                                         column_config={**MONEY, **REASONING})
        right.vega_lite_chart(rows.assign(cost=usd(rows["cost_nanousd"])), cost_by(part), height=40 + 28 * len(rows))


# Vega-Lite specs written out: Streamlit's chart helpers build them through Altair, whose schema validation costs
# about 0.1 s a chart, a tenth of this page's time budget.
TOKENS_PER_DAY = {
    # Reasoning tokens are some of the completion tokens: a line of their own below that line, never stacked on it.
    "transform": [{"fold": ["prompt_tokens", "completion_tokens", "reasoning_tokens"], "as": ["kind", "tokens"]}],
    "mark": {"type": "line", "point": True, "tooltip": True},
    "encoding": {"x": {"field": "day", "type": "ordinal", "title": "day (UTC)"},
                 "y": {"field": "tokens", "type": "quantitative", "title": "tokens"},
                 "color": {"field": "kind", "type": "nominal", "title": None}},
}


def cost_by(part: str) -> dict:
    return {"mark": {"type": "bar", "tooltip": True},
            "encoding": {"y": {"field": part, "type": "nominal", "sort": "-x", "title": None},
                         "x": {"field": "cost", "type": "quantitative", "title": "cost ($)"}}}


def _export(settings: Settings, session: AuthSession, usage: UsageFilter) -> None:
    # A link for this sign-in session and this filter: web/files.py builds the CSV when it is followed, after checking
    # the cookie and the role again, and audits it (`usage_exported`).
    href = file_links(settings).usage_csv(session.id, usage.month, usage.deployment, usage.chain, usage.tenant,
                                          usage.person)
    download_link("Download CSV", href, key="admin_export")
    st.caption("The CSV holds the filtered usage, one row per person, day, deployment and chain: calls, prompt and "
               "completion tokens (and how many of those were hidden reasoning) and the exact cost in dollars; names "
               "where the person has signed in recently.")


def _budgets(reports: UsageReports, ledger: UsageLedger, audit: AuditLog, context: AuditContext,
             session: AuthSession) -> None:
    st.caption("A budget override replaces a person's role or default monthly budget; it applies to their next "
               "message. This month's spending so far counts against it.")
    with st.form("budget_override", border=True):
        oid_column, tenant_column, amount_column = st.columns([1.3, 1.3, 1])
        oid = oid_column.text_input("Person's object id", key="override_oid", max_chars=64)
        tenant = tenant_column.text_input("Tenant id", value=session.identity.tenant_id, key="override_tenant",
                                          max_chars=64)
        amount = amount_column.text_input("Monthly budget in $", key="override_amount", max_chars=20,
                                          help="Leave empty to remove the override.")
        submitted = st.form_submit_button("Save budget", icon=":material/save:", key="override_save")
    if submitted:
        try:
            person, person_tenant = parse_object_id(oid, "object id"), parse_object_id(tenant, "tenant id")
            budget = parse_budget(amount)
        except ValueError as problem:
            st.error(str(problem), icon=":material/error:")
        else:
            previous = ledger.override(person, person_tenant)
            ledger.set_override(person, person_tenant, budget, context.user_oid)
            audit.event("budget_override_set", context, target_oid=person, target_tenant=person_tenant,
                        budget_usd=None if budget is None else str(budget),
                        previous_usd=None if previous is None else str(to_usd(previous)))
            _figures.clear()  # the people's budget overrides
            st.success(f"{person} now has no override: the role or default budget applies." if budget is None else
                       f"{person} now has a monthly budget of ${budget:,}.", icon=":material/check_circle:")
    overrides = reports.overrides()
    if overrides.empty:
        st.caption("No budget overrides.")
        return
    names = reports.names(sorted(set(overrides["oid"]) | set(overrides["set_by"])))
    table = pd.DataFrame({
        "name": names_of(overrides["oid"], names), "oid": overrides["oid"], "tenant": overrides["tenant"],
        "monthly budget $": usd(overrides["monthly_nanousd"]),
        "set by": names_of(overrides["set_by"], names).where(lambda name: name != "", overrides["set_by"]),
        "set at (UTC)": pd.to_datetime(overrides["set_at"], utc=True).dt.strftime("%Y-%m-%d %H:%M"),
    })
    st.container(key="admin_overrides").dataframe(
        table, hide_index=True, column_config={"monthly budget $": st.column_config.NumberColumn(format="$%.2f")})


if __name__ == "__main__":  # run by st.navigation as the page script
    from ui.admin import admin_page as _page

    _page()
