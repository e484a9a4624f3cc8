"""Server-side time to render the usage administration page (/admin) over 1,000,000 usage records, against an empty
database.

Two data directories: `empty` (nothing but the sign-in) and `million`: 1,000,000 rows in `usage_records` as the usage
ledger writes them (store/usage.py), over the 60 days up to today: about 500 people of 3 tenants (a few heavy users,
many light ones), 3 deployments and 4 chains (each person mostly on their own favourites), fewer calls at weekends,
log-normal token counts and costs at the catalog's prices; `usage_months` agrees with the rows. The rows are generated
with numpy and written with executemany into SQLite; the covering indexes the reports need (REPORT_INDEXES in
store/usage_reports.py) are created when store/usage.py does not declare them yet, and the output says so.

The page runs under Streamlit's AppTest in this process, as bench/rerun.py does: the settings `make run` gives the app,
the test person signed in for real against the in-process emulators, and made an administrator (APP_ADMIN_ROLE set to
a role she holds). The million case views the month with the most rows (about half of them). One sample is the wall
time of `at.run()` of the admin page with Streamlit's data cache cleared first (every figure read from the database:
the cold render, as when the page is opened); the cases take turns. Also stated: warm reruns (figures cached for a
minute, as after a click that changes no filter), the rerun after first picking one deployment, and the time to make
the month's CSV export (it is made only when its button is pressed).
Target: the cold render over 1,000,000 rows under 1 s; its ratio to the empty database is stated.

`python -m bench.admin [--quick] [--rows N] [--runs N] [--keep] [--no-report-indexes]`; --quick (100,000 rows, 3 runs)
is a smoke check without verdicts.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.result import result

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

PAGE = ROOT / "ui" / "page.py"
ROWS, PEOPLE, DAYS = 1_000_000, 500, 60
TARGET_SECONDS = 1.0
CHAINS = (("assistant@1", 0.55), ("concise@1", 0.2), ("draft_refine@1", 0.15), ("agent@1", 0.1))
DEPLOYMENTS = (("gpt-4o", 0.5), ("gpt-4o-mini", 0.35), ("gpt-35-turbo", 0.15))
TENANT_SHARES = (0.6, 0.3, 0.1)
BATCH = 100_000


# -- data --------------------------------------------------------------------------------------------------------------
def usage_rows(rows: int, *, people: int = PEOPLE, days: int = DAYS, today: date | None = None, seed: int = 7):
    """Batches of `usage_records` tuples (at, day, month, oid, tenant, deployment, chain, purpose, outcome,
    prompt_tokens, completion_tokens, cost_nanousd), generated column-wise with numpy."""
    import numpy as np

    from config.catalog import load_catalog
    from localdev.stack import TENANT_ID

    rng = np.random.default_rng(seed)
    from localdev import LOCAL_CATALOG_FILE

    catalog = load_catalog(LOCAL_CATALOG_FILE)  # the local tenant's: the classic rows these figures were taken with
    today = today or datetime.now(timezone.utc).date()
    tenants = np.array([TENANT_ID, str(uuid.UUID(int=int(rng.integers(2**62)), version=4)),
                        str(uuid.UUID(int=int(rng.integers(2**62)), version=4))])
    oids = np.array([str(uuid.UUID(int=int(rng.integers(2**62)) << 64 | int(rng.integers(2**62)), version=4))
                     for _ in range(people)])
    home = rng.choice(len(tenants), size=people, p=TENANT_SHARES)
    activity = rng.lognormal(0.0, 1.2, size=people)  # a few heavy users, many light ones
    activity /= activity.sum()
    names = [n for n, _ in DEPLOYMENTS]
    chains = [c for c, _ in CHAINS]
    favourite_deployment = rng.choice(len(names), size=people, p=[w for _, w in DEPLOYMENTS])
    favourite_chain = rng.choice(len(chains), size=people, p=[w for _, w in CHAINS])
    first = today - timedelta(days=days - 1)
    calendar = [first + timedelta(days=d) for d in range(days)]
    weight = np.array([0.25 if d.weekday() >= 5 else 1.0 for d in calendar])
    weight /= weight.sum()
    prices = np.array([(int(catalog.get(n).input_price_per_1m * 1000), int(catalog.get(n).output_price_per_1m * 1000))
                       for n in names], dtype=np.int64)  # nano-dollars per token
    day_text = np.array([d.isoformat() for d in calendar])
    month_text = np.array([d.strftime("%Y-%m") for d in calendar])
    clock = np.array([f" {m // 60:02d}:{m % 60:02d}:{m * 7 % 60:02d}.000000" for m in range(7 * 60, 19 * 60)])
    done = 0
    while done < rows:
        size = min(BATCH, rows - done)
        person = rng.choice(people, size=size, p=activity)
        day = rng.choice(days, size=size, p=weight)
        deployment = np.where(rng.random(size) < 0.8, favourite_deployment[person], rng.integers(len(names), size=size))
        chain = np.where(rng.random(size) < 0.75, favourite_chain[person], rng.integers(len(chains), size=size))
        purpose = np.array(["answer", "summary", "draft"])[rng.choice(3, size=size, p=[0.85, 0.1, 0.05])]
        outcome = np.where(rng.random(size) < 0.97, "ok", "stopped")
        prompt = np.clip(rng.lognormal(7.2, 0.9, size=size), 20, 120_000).astype(np.int64)
        completion = np.clip(rng.lognormal(5.6, 0.8, size=size), 1, 4_000).astype(np.int64)
        cost = prompt * prices[deployment, 0] + completion * prices[deployment, 1]
        days_of = day_text[day].tolist()
        at = [d + t for d, t in zip(days_of, clock[rng.integers(len(clock), size=size)].tolist())]
        yield list(zip(at, days_of, month_text[day].tolist(), oids[person].tolist(),
                       tenants[home[person]].tolist(), np.array(names)[deployment].tolist(),
                       np.array(chains)[chain].tolist(), purpose.tolist(), outcome.tolist(), prompt.tolist(),
                       completion.tolist(), cost.tolist()))
        done += size


def fill(data_dir: Path, rows: int, report_indexes: bool = True) -> list[str]:
    """`rows` usage records in the data directory's database; returns the report indexes this bench had to create
    because store/usage.py does not declare them (yet); `report_indexes=False` leaves them out."""
    from config.database import database_engine
    from store.usage import UsageLedger
    from store.usage_reports import REPORT_INDEXES

    UsageLedger(database_engine(None, data_dir, "conversations.db"))  # the ledger's own tables and indexes
    db = sqlite3.connect(data_dir / "conversations.db")
    try:
        db.execute("PRAGMA synchronous=OFF")
        # The ledger's indexes are dropped for the bulk insert and built again after it (5 times faster).
        ledger_indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                                    "tbl_name = 'usage_records' AND sql IS NOT NULL").fetchall()
        with db:
            for name, _ in ledger_indexes:
                db.execute(f"DROP INDEX {name}")
            for batch in usage_rows(rows):
                db.executemany("INSERT INTO usage_records (at, day, month, oid, tenant, deployment, chain, purpose, "
                               "outcome, prompt_tokens, completion_tokens, cost_nanousd) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
            db.execute("INSERT INTO usage_months (oid, tenant, month, spent_nanousd, reserved_nanousd) "
                       "SELECT oid, tenant, month, SUM(cost_nanousd), 0 FROM usage_records GROUP BY oid, tenant, month")
            for _, sql in ledger_indexes:
                db.execute(sql)
        declared = {name for name, _ in ledger_indexes}
        created = []
        for name, columns in REPORT_INDEXES.items() if report_indexes else ():
            if name not in declared:
                db.execute(f"CREATE INDEX {name} ON usage_records ({', '.join(columns)})")
                created.append(name)
        db.commit()
    finally:
        db.close()
    return created


def busiest_month(data_dir: Path) -> tuple[str, int]:
    db = sqlite3.connect(data_dir / "conversations.db")
    try:
        found = db.execute("SELECT month, COUNT(*) FROM usage_records GROUP BY month ORDER BY 2 DESC LIMIT 1")
        return found.fetchone() or ("", 0)
    finally:
        db.close()


# -- renders under AppTest ---------------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    label: str
    data_dir: Path
    session_id: str | None = None
    at: object = None
    month: str | None = None
    month_rows: int = 0
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    filtered: list[float] = field(default_factory=list)  # the first pick of one deployment
    export: tuple[float, int] = (0.0, 0)  # seconds and rows of the month's CSV export


_current_session: dict[str, str | None] = {"id": None}


def _render(case: Case, *, cold: bool) -> float:
    import streamlit as st

    os.environ["APP_DATA_DIR"] = str(case.data_dir)
    _current_session["id"] = case.session_id
    if cold:
        st.cache_data.clear()
    started = time.perf_counter()
    case.at.run()
    elapsed = time.perf_counter() - started
    _check(case)
    return elapsed


def _filtered(case: Case, deployment: str) -> float:
    """The first pick of one deployment after the page was opened: the month's figures are cached by the opening
    render, the deployment's are read. The shown calls are checked against SQL; then back to all deployments."""
    _render(case, cold=True)
    at = case.at
    at.session_state["admin_deployment"] = deployment
    rows = case.month_rows
    case.month_rows = _count(case.data_dir, case.month, deployment)
    try:
        return _render(case, cold=False)
    finally:
        case.month_rows = rows
        at.session_state["admin_deployment"] = "All"


def _count(data_dir: Path, month: str | None, deployment: str) -> int:
    db = sqlite3.connect(data_dir / "conversations.db")
    try:
        return db.execute("SELECT COUNT(*) FROM usage_records WHERE month = ? AND deployment = ?",
                          (month or "", deployment)).fetchone()[0]
    finally:
        db.close()


def _export(case: Case) -> tuple[float, int]:
    """The CSV export of the month shown, as the download button's callable makes it."""
    from config.database import database_engine
    from store.usage_reports import UsageFilter, UsageReports

    reports = UsageReports(database_engine(None, case.data_dir, "conversations.db"),
                           database_engine(None, case.data_dir, "sessions.db"))
    started = time.perf_counter()
    _, rows = reports.export_csv(UsageFilter(case.month))
    return time.perf_counter() - started, rows


def _check(case: Case) -> None:
    at = case.at
    if at.exception:
        raise RuntimeError(f"the admin page failed in case {case.name}: {[e.message for e in at.exception][:3]}")
    if not at.title or at.title[0].value != "Usage administration":
        raise RuntimeError(f"case {case.name}: the admin page was not shown: {[e.value for e in at.error][:2]}")
    calls = next(int(m.value.replace(",", "")) for m in at.metric if m.label == "Model calls")
    if calls != case.month_rows:
        raise RuntimeError(f"case {case.name}: the page shows {calls:,} model calls, the month has {case.month_rows:,}")


def measure(args, base: Path) -> list[Case]:
    from streamlit.testing.v1 import AppTest

    import ui.session
    from config import load_settings
    from localdev.entra import Knobs
    from localdev.stack import StackConfig, app_environment, start_emulators
    from tests.integration.signin import sign_in

    cases = [Case("empty", "empty database", base / "empty"),
             Case("million", f"{args.rows:,} usage rows", base / "million")]
    for case in cases:
        case.data_dir.mkdir(parents=True)
    started = time.monotonic()
    created = fill(cases[1].data_dir, args.rows, report_indexes=not args.no_report_indexes)
    cases[1].month, cases[1].month_rows = busiest_month(cases[1].data_dir)
    size = (cases[1].data_dir / "conversations.db").stat().st_size / 1e6
    print(f"data: {args.rows:,} usage rows ({size:.0f} MB SQLite) in {time.monotonic() - started:.0f} s; the busiest "
          f"month {cases[1].month} has {cases[1].month_rows:,} of them", flush=True)
    if args.no_report_indexes:
        print("note: without the report indexes (--no-report-indexes): no verdict", flush=True)
    elif created:
        print(f"note: store/usage.py does not declare {', '.join(created)} (memory/usage_reports.REPORT_INDEXES); "
              "created here, as the app will have them", flush=True)

    for name in list(os.environ):
        if name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_")):
            del os.environ[name]
    config = StackConfig(app_port=8080, entra_port=0, aoai_port=0, graph_port=0, data_dir=base / "stack")
    emulators = start_emulators(config)
    try:
        emulators.entra.knobs = Knobs()
        os.environ.update(app_environment(config, emulators))
        os.environ["APP_ADMIN_ROLE"] = "Chat.Experimenter"  # a role the test person holds: she is an administrator
        ui.session.session_cookie = lambda: _current_session["id"]  # AppTest has no browser, so no cookie
        for case in cases:
            os.environ["APP_DATA_DIR"] = str(case.data_dir)
            _current_session["id"] = case.session_id = sign_in(load_settings(env_file=None), emulators).session_id
            case.at = AppTest.from_file(str(PAGE), default_timeout=args.timeout)
            case.at.run()  # the chat, then the admin page by its URL path
            case.at.switch_page("admin.py")
            if case.month:
                case.at.session_state["admin_month"] = case.month
            for _ in range(args.warmup):
                _render(case, cold=True)
        print(f"measuring: {args.runs} cold and {args.runs} warm renders per case, taking turns", flush=True)
        for round_ in range(args.runs):
            for case in cases if round_ % 2 == 0 else cases[::-1]:
                case.cold.append(_render(case, cold=True))
                case.warm.append(_render(case, cold=False))
        million = cases[1]
        for _ in range(max(3, args.runs // 3)):
            million.filtered.append(_filtered(million, "gpt-4o"))
        million.export = _export(million)
    finally:
        emulators.stop()
    return cases


def report(cases: list[Case], args) -> None:
    empty, million = cases
    print(f"\nserver-side time of one admin page render (AppTest, signed in as an administrator), median of "
          f"{args.runs} runs")
    print("| case | cold ms | warm ms | cold range ms |")
    print("|---|---:|---:|---|")
    for case in cases:
        print(f"| {case.label} | {statistics.median(case.cold) * 1000:.0f} | {statistics.median(case.warm) * 1000:.0f} "
              f"| {min(case.cold) * 1000:.0f}–{max(case.cold) * 1000:.0f} |")
    cold = statistics.median(million.cold)
    verdict = None if args.quick or args.no_report_indexes else cold < TARGET_SECONDS
    result(f"admin page: cold render over {args.rows:,} usage rows ({million.month_rows:,} in the month shown), s",
           cold, f"< {TARGET_SECONDS:g} s", verdict)
    result(f"admin page: cold render, {args.rows:,} usage rows ÷ empty database", cold / statistics.median(empty.cold),
           "stated", None)
    result(f"admin page: warm rerun over {args.rows:,} usage rows, s", statistics.median(million.warm), "stated", None)
    print(f"  first pick of one deployment: median {statistics.median(million.filtered) * 1000:.0f} ms of "
          f"{len(million.filtered)} runs")
    print(f"  CSV export of the month ({million.export[1]:,} rows, made when the button is pressed): "
          f"{million.export[0]:.2f} s")
    result(f"admin page: rerun after picking one deployment, over {args.rows:,} usage rows, s",
           statistics.median(million.filtered), "stated", None)
    result(f"admin page: CSV export of the busiest month ({million.export[1]:,} rows), s", million.export[0], "stated",
           None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke check: 100,000 rows, 3 runs, no verdicts")
    parser.add_argument("--rows", type=int, help=f"usage rows (default {ROWS:,}; 100,000 with --quick)")
    parser.add_argument("--runs", type=int, help="measured renders per case (default 11; 3 with --quick)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up renders per case")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one render may take")
    parser.add_argument("--keep", action="store_true", help="keep the data directories (their path is printed)")
    parser.add_argument("--no-report-indexes", action="store_true",
                        help="measure without memory/usage_reports.REPORT_INDEXES (unless store/usage.py declares "
                             "them): what they are worth")
    args = parser.parse_args()
    args.rows = args.rows or (100_000 if args.quick else ROWS)
    args.runs = args.runs or (3 if args.quick else 11)

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))
    base = Path(tempfile.mkdtemp(prefix="bench-admin-"))
    here = os.getcwd()
    os.chdir(base)  # no stray .env from the checkout
    try:
        report(measure(args, base), args)
    finally:
        os.chdir(here)
        if args.keep:
            print(f"data directories kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
