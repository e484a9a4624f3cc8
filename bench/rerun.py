"""Server-side time of one page rerun for a signed-in person, and how the data directory's size changes it.

Four cases, measured in one run, each with its own data directory:
  empty          nothing but the sign-in
  audit          a 100,000-record audit log (model calls plus feedback votes, rotated as the app's
                 RotatingFileHandler leaves it: audit.jsonl and audit.jsonl.1 … of at most 10 MB each), and where
                 the app keeps aggregates of it (the chain statistics table), those filled from it
  conversations  500 saved conversations of the signed-in person (the sidebar lists them)
  open-200       one open conversation of 200 turns (400 messages; the page draws the newest 50 and offers
                 earlier ones on request)
The page file ui/page.py runs under Streamlit's AppTest in this process with the settings `make run` gives it; the
person signs in for real against the in-process emulators (the page finds the session through the same cookie seam
the integration tests replace). One sample is the wall time (and process CPU time) of `at.run()` for an idle rerun
(no message sent), after warm-up runs; the cases take turns (round-robin, order rotated each round), so machine noise
hits all alike. Targets, as ratios of medians to the empty case: audit ≤ 1.2, 500 conversations ≤ 1.5; the 200-turn
conversation's ratio is stated.

Then the time to first token in chromium, with the 100,000-record audit log against an empty data directory: two
whole stacks (`python -m localdev.stack`, scripted engine), the same person signed in to each; each turn opens the
page afresh, sends a message, and times from pressing Enter to the answer's first text in the page (both moments on
the page's clock). Turns alternate between the stacks. Target: ratio of medians ≤ 1.2.

`python -m bench.rerun [--quick] [--runs N] [--records N] [--ttft-turns N] [--no-browser]`; --quick (10,000 records,
5 runs, 3 turns) is a smoke check and gives no met/missed verdicts. tests/unit/test_bench_rerun.py checks the audit log.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.result import result

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

PAGE = ROOT / "ui" / "page.py"
AUDIT_TARGET, CONVERSATIONS_TARGET, TTFT_TARGET = 1.2, 1.5, 1.2
RECORDS, CONVERSATIONS, OPEN_TURNS = 100_000, 500, 200
FEEDBACK_EVERY = 20  # one feedback vote per 20 model calls

# -- data: an audit log ------------------------------------------------------------------------------------------------

CHAINS = ["assistant@1", "assistant@1", "assistant@1", "concise@1", "draft_refine@1"]
DEPLOYMENTS = ["gpt-5-mini", "gpt-5-mini", "gpt-5.4-nano", "gpt-5.1"]
FAILURES = [("throttled", 429), ("server_error", 500), ("timeout", None), ("stream_cut", None),
            ("prompt_filtered", 400), ("answer_filtered", None)]


def rotation_limits() -> tuple[int, int]:
    """The app's own rotation: configure_audit_log's max_bytes and backups defaults (10 MB, 10 files)."""
    try:
        from callbacks.audit import configure_audit_log

        parameters = inspect.signature(configure_audit_log).parameters
        return int(parameters["max_bytes"].default), int(parameters["backups"].default)
    except (ImportError, KeyError, TypeError, ValueError):
        return 10 * 1024 * 1024, 10


@dataclass
class _Person:
    oid: str
    ip: str
    identity_mode: str
    sessions: list[str] = field(default_factory=list)


def audit_records(model_calls: int, *, seed: int = 15, feedback_every: int = FEEDBACK_EVERY,
                  end: datetime | None = None, days: int = 60):
    """`model_calls` records shaped as AuditHandler._write writes them (context fields, usage, cost, latency, time to
    first token, outcome), plus a feedback vote (as the page's audit_event("feedback", ...)) after every
    `feedback_every`-th answer; in time order over `days` days, from 40 people of one tenant."""
    from config.catalog import load_catalog
    from localdev.stack import TENANT_ID

    rng = random.Random(seed)
    catalog = load_catalog()
    people = [_Person(str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                      "on_behalf_of" if n % 5 == 0 else "app") for n in range(40)]
    for person in people:
        person.sessions = [f"{rng.getrandbits(64):016x}" for _ in range(6)]
    end = end or datetime.now(timezone.utc)
    start = end - timedelta(days=days)
    step = timedelta(days=days) / max(1, model_calls)
    conversation: dict[str, str] = {}
    answers = 0
    for n in range(model_calls):
        # A call in the first half of its slot, its vote (if any) in the second half: the file stays in time order.
        slot = start + step * n
        when = slot + step / 2 * rng.random()
        person = people[rng.randrange(len(people))]
        chain = rng.choice(CHAINS)
        deployment = catalog.get(rng.choice(DEPLOYMENTS))
        if person.oid not in conversation or rng.random() < 0.15:
            conversation[person.oid] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        purpose = "summary" if rng.random() < 0.10 else ("draft" if chain.startswith("draft_refine") and rng.random() < 0.5 else "answer")
        temperature = 0.2 if chain.startswith("concise") else (0 if purpose == "summary" else rng.choice([0.7, 0.7, 0.3, 1.0]))
        context = {
            "user_oid": person.oid, "tenant_id": TENANT_ID, "source_ip": person.ip,
            "session": rng.choice(person.sessions), "conversation_id": conversation[person.oid], "chain": chain,
            "deployment": deployment.name, "identity_mode": person.identity_mode,
            "max_output_tokens": rng.choice([1000, 1000, 1000, 500, 2000, 4096]), "temperature": temperature, "origin": "chat",
        }
        roll = rng.random()
        outcome, status = ("ok", None) if roll < 0.95 else (("stopped", None) if roll < 0.97 else rng.choice(FAILURES))
        prompt = rng.randrange(40, 6000)
        completion = 0 if outcome in ("throttled", "server_error", "timeout", "prompt_filtered") else rng.randrange(5, 900)
        # Reasoning deployments: part of the output is hidden reasoning; the call says what it sent (request_rules).
        reasoning = rng.randrange(0, completion + 1) if deployment.reasoning and completion else 0
        effort = deployment.effort(None)
        sent = {"temperature": None if deployment.reasoning else temperature, "top_p": None,
                "max_completion_tokens": context["max_output_tokens"], "reasoning_effort": effort}
        streamed = purpose != "summary" and completion > 0
        latency = rng.randrange(300, 9000)
        record = {
            "time": when.isoformat(timespec="milliseconds"), "event": "model_call",
            "run_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "purpose": purpose, **context, **sent,
            "prompt_tokens": prompt, "completion_tokens": completion, "reasoning_tokens": reasoning,
            "usage_estimated": outcome in ("stopped", "stream_cut"),
            "cost_usd": str(deployment.cost(prompt, completion)), "latency_ms": latency,
            "time_to_first_token_ms": rng.randrange(150, min(latency, 2500) + 1) if streamed else None,
            "finish_reason": {"ok": "stop", "answer_filtered": "content_filter"}.get(outcome),
            "content_filter": ({"prompt": ["hate"]} if outcome == "prompt_filtered" else
                               {"answer": ["violence"]} if outcome == "answer_filtered" else {}),
            "azure_request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)) if outcome != "timeout" else None,
            "status_code": status, "outcome": outcome,
        }
        yield record
        if purpose == "answer" and outcome == "ok":
            answers += 1
            if answers % feedback_every == 0:
                vote_time = slot + step / 2 * (1 + rng.random())
                yield {"time": vote_time.isoformat(timespec="milliseconds"), "event": "feedback",
                       **{**context, "max_output_tokens": None, "temperature": None},
                       "message_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "score": int(rng.random() < 0.8)}


def write_audit_log(audit_dir: Path, model_calls: int, *, seed: int = 15, max_bytes: int | None = None,
                    backups: int | None = None, end: datetime | None = None) -> list[Path]:
    """The audit log as the app's RotatingFileHandler would have left it after writing these records one by one:
    audit.jsonl holds the newest, audit.jsonl.1 the ones before, … up to `backups` files (older ones are gone), each
    rolled over before a line would take it to `max_bytes`. Returns the files, oldest first."""
    default_bytes, default_backups = rotation_limits()
    max_bytes, backups = max_bytes or default_bytes, backups if backups is not None else default_backups
    audit_dir.mkdir(parents=True, exist_ok=True)
    base = audit_dir / "audit.jsonl"
    for old in audit_dir.glob("audit.jsonl*"):
        old.unlink()
    chunks: list[list[str]] = [[]]
    size = 0
    for record in audit_records(model_calls, seed=seed, end=end):
        line = json.dumps(record, ensure_ascii=False) + "\n"  # the handler's "%s\n" of the formatter's message
        if size and size + len(line) >= max_bytes:  # RotatingFileHandler.shouldRollover
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line.encode("utf-8"))
    chunks = chunks[-(backups + 1):]
    files = []
    for age, lines in enumerate(reversed(chunks)):
        path = base if age == 0 else base.with_name(f"audit.jsonl.{age}")
        with open(path, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
        files.append(path)
    return list(reversed(files))


def keep_aggregates(data_dir: Path) -> str:
    """A data directory as the app would have left it after writing that audit log: where the app keeps aggregates
    of the log (the chain statistics table, callbacks/chain_stats.py), they are filled from it once, as
    `python -m callbacks.chain_stats --rebuild` does; a page that reads the log itself needs nothing more."""
    try:
        from callbacks.chain_stats import ChainStatistics
        from callbacks.experiments import read_audit
    except ImportError:
        return "no aggregates to fill"
    from config.database import database_engine

    statistics = ChainStatistics(database_engine(None, data_dir, "conversations.db"))
    count = statistics.rebuild(read_audit(data_dir / "audit" / "audit.jsonl"))
    return f"chain statistics filled from its {count:,} records"


# -- data: conversations -----------------------------------------------------------------------------------------------

WORDS = ("the service cluster migration rollback plan team budget quarter report customer contract policy travel "
         "expense invoice supplier risk data backup network latency release deadline review meeting summary draft "
         "design test results incident owner change window approval security access identity token storage cost "
         "forecast region capacity workload database index query schema pipeline deployment monitoring alert").split()


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randrange(low, high))]
    return " ".join(words).capitalize() + "."


def _question(rng: random.Random, n: int) -> str:
    return f"{_sentence(rng, 6, 14)[:-1]}? " + " ".join(_sentence(rng, 5, 12) for _ in range(rng.randrange(1, 3))) + f" (#{n})"


def _answer(rng: random.Random) -> str:
    """Markdown of a typical answer: paragraphs, a list, sometimes a code block (~100–250 words)."""
    parts = [" ".join(_sentence(rng, 8, 18) for _ in range(rng.randrange(2, 5)))]
    parts.append("\n".join(f"- **{rng.choice(WORDS)}**: {_sentence(rng, 5, 12)}" for _ in range(rng.randrange(3, 6))))
    if rng.random() < 0.25:
        parts.append("```sql\nSELECT id, owner, updated_at FROM conversations\nWHERE owner = :owner\nORDER BY updated_at DESC;\n```")
    parts.append(" ".join(_sentence(rng, 8, 18) for _ in range(rng.randrange(1, 4))))
    return "\n\n".join(parts)


def _store(data_dir: Path):
    from config.database import database_engine
    from memory.store import ConversationStore
    from store.files import FileStore

    return ConversationStore(database_engine(None, data_dir, "conversations.db"), FileStore(data_dir / "images"))


def _commit_turns(store, owner, conversation, turns: int, rng: random.Random, *, deployment: str = "gpt-5-mini",
                  chain: str = "assistant@1") -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    from config.catalog import load_catalog
    from memory.conversation import Turn, Usage
    from memory.summary import SUMMARY_PREFIX

    priced = load_catalog().get(deployment)
    conversation.settings.update(deployment=deployment, chain=chain.split("@")[0], max_output_tokens=1000, temperature=0.7)
    for n in range(1, turns + 1):
        user = conversation.add(Turn(role="user", content=_question(rng, n)))
        prompt, completion = rng.randrange(200, 3000), rng.randrange(80, 600)
        answer = conversation.add(Turn(role="assistant", content=_answer(rng), deployment=deployment, chain=chain,
                                       usage=Usage(prompt, completion, priced.cost(prompt, completion), False, 1),
                                       feedback=rng.choice([None, None, None, 1, 0])))
        recent = [HumanMessage(user.content, id=user.id), AIMessage(answer.content, id=answer.id)]
        if len(conversation.turns) > 4:  # a running summary plus the last messages, as summary memory leaves it
            summary = HumanMessage(SUMMARY_PREFIX + " ".join(_sentence(rng, 10, 20) for _ in range(4)),
                                   additional_kwargs={"lc_source": "summarization"})
            previous = conversation.turns[-3]
            conversation.memory = [summary, AIMessage(previous.content, id=previous.id), *recent]
        else:
            conversation.memory = [*conversation.memory, *recent]
        store.commit_turn(owner, conversation, user, answer)


def save_conversations(data_dir: Path, owner, count: int, turns_each: int = 2, seed: int = 500) -> list[str]:
    """`count` saved conversations of `owner` (titles from their first message), `turns_each` turns each."""
    from memory.conversation import Conversation

    rng, store, ids = random.Random(seed), _store(data_dir), []
    for _ in range(count):
        conversation = Conversation()
        _commit_turns(store, owner, conversation, turns_each, rng)
        ids.append(conversation.id)
    return ids


def save_long_conversation(data_dir: Path, owner, turns: int, seed: int = 200) -> str:
    from memory.conversation import Conversation

    conversation = Conversation()
    _commit_turns(_store(data_dir), owner, conversation, turns, random.Random(seed))
    return conversation.id


# -- reruns under AppTest ----------------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    label: str
    data_dir: Path
    session_id: str | None = None
    at: object = None
    open_id: str | None = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    note: str = ""


_current_session: dict[str, str | None] = {"id": None}


def _check(case: Case) -> None:
    at = case.at
    if at.exception:
        raise RuntimeError(f"the page failed in case {case.name}: {[e.message for e in at.exception][:3]}")
    if not at.chat_input:
        raise RuntimeError(f"case {case.name}: the page shows no chat input (not signed in?)")


def _rerun(case: Case) -> tuple[float, float]:
    os.environ["APP_DATA_DIR"] = str(case.data_dir)
    _current_session["id"] = case.session_id
    wall, cpu = time.perf_counter(), time.process_time()
    case.at.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    _check(case)
    return wall, cpu


def _open(case: Case, store_dir: Path, owner) -> None:
    """Open the long conversation the way a person does (its sidebar button); the session state if the page has no
    such button any more."""
    at = case.at
    buttons = [b for b in at.button if b.key == f"open-{case.open_id}"]
    if buttons:
        os.environ["APP_DATA_DIR"] = str(case.data_dir)
        _current_session["id"] = case.session_id
        buttons[0].click()
        at.run()
        _check(case)
        case.note = "opened with its sidebar button"
    opened = at.session_state["conversation"] if "conversation" in at.session_state else None
    if opened is None or getattr(opened, "id", None) != case.open_id:
        at.session_state["conversation"] = _store(store_dir).load(owner, case.open_id)
        case.note = "opened through st.session_state"


def measure_reruns(args, base: Path) -> list[Case]:
    from streamlit.testing.v1 import AppTest

    import ui.session
    from config import load_settings
    from localdev.entra import Knobs
    from localdev.stack import TENANT_ID, TEST_USER, StackConfig, app_environment, start_emulators
    from memory.store import Owner
    from tests.integration.signin import sign_in

    owner = Owner(TEST_USER.oid, TENANT_ID)
    cases = [Case("empty", "empty data directory", base / "empty"),
             Case("audit", f"{args.records:,}-record audit log", base / "audit"),
             Case("conversations", f"{args.conversations} saved conversations", base / "conversations"),
             Case("open", f"one open {args.turns}-turn conversation", base / "open")]
    for case in cases:
        case.data_dir.mkdir(parents=True)
    started = time.monotonic()
    files = write_audit_log(cases[1].data_dir / "audit", args.records)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in files)
    kept = keep_aggregates(cases[1].data_dir)
    print(f"data: audit log of {args.records:,} model calls + votes in {len(files)} files ({sizes}); {kept} "
          f"[{time.monotonic() - started:.0f} s]", flush=True)
    started = time.monotonic()
    save_conversations(cases[2].data_dir, owner, args.conversations)
    cases[3].open_id = save_long_conversation(cases[3].data_dir, owner, args.turns)
    print(f"data: {args.conversations} conversations × 2 turns, one of {args.turns} turns "
          f"[{time.monotonic() - started:.0f} s]", flush=True)

    # The settings `make run` gives the app (as the stack_env fixture applies them), one data directory per case.
    for name in list(os.environ):
        if name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_")):
            del os.environ[name]
    config = StackConfig(app_port=8080, entra_port=0, aoai_port=0, graph_port=0, data_dir=base / "stack")
    emulators = start_emulators(config)
    try:
        emulators.entra.knobs = Knobs()
        os.environ.update(app_environment(config, emulators))
        # The one seam the integration tests replace too: AppTest has no browser, so no session cookie.
        ui.session.session_cookie = lambda: _current_session["id"]
        for case in cases:
            os.environ["APP_DATA_DIR"] = str(case.data_dir)
            case.session_id = sign_in(load_settings(env_file=None), emulators).session_id
            case.at = AppTest.from_file(str(PAGE), default_timeout=args.timeout)
        for case in cases:  # warm-up: imports, caches, the first query of every store
            for _ in range(args.warmup):
                _rerun(case)
        _open(cases[3], cases[3].data_dir, owner)
        for _ in range(args.warmup):
            _rerun(cases[3])
        shown = len(cases[3].at.chat_message)
        cases[3].note += f"; {shown} of its {2 * args.turns} messages on the page"
        try:  # the page draws the newest messages of a long conversation and earlier ones on request
            from ui.turn_view import SHOWN_MESSAGES
        except ImportError:  # an older page drew them all
            SHOWN_MESSAGES = 2 * args.turns
        if shown != min(2 * args.turns, SHOWN_MESSAGES):
            raise RuntimeError(f"the open conversation shows {shown} messages, expected "
                               f"{min(2 * args.turns, SHOWN_MESSAGES)}")
        print(f"measuring: {args.runs} idle reruns per case, round-robin", flush=True)
        for round_ in range(args.runs):
            shift = round_ % len(cases)
            for case in cases[shift:] + cases[:shift]:
                wall, cpu = _rerun(case)
                case.wall.append(wall)
                case.cpu.append(cpu)
    finally:
        emulators.stop()
    return cases


def _verdict(args, ok: bool) -> bool | None:
    """Met or missed only for a full run: a --quick smoke check has too few samples to judge a 20 % margin."""
    return None if args.quick else ok


def report_reruns(cases: list[Case], args) -> None:
    empty = cases[0]
    base_wall, base_cpu = statistics.median(empty.wall), statistics.median(empty.cpu)
    print(f"\nserver-side time of one idle rerun (AppTest, signed in), median of {args.runs} interleaved runs")
    print("| case | wall ms | CPU ms | wall ÷ empty | CPU ÷ empty | target |")
    print("|---|---:|---:|---:|---:|---|")
    targets = {"empty": "", "audit": f"≤ {AUDIT_TARGET}", "conversations": f"≤ {CONVERSATIONS_TARGET}", "open": "stated"}
    for case in cases:
        wall, cpu = statistics.median(case.wall), statistics.median(case.cpu)
        print(f"| {case.label} | {wall * 1000:.1f} | {cpu * 1000:.1f} | {wall / base_wall:.2f} | {cpu / base_cpu:.2f} "
              f"| {targets[case.name]} |")
    for case in cases:
        spread = f"{min(case.wall) * 1000:.0f}–{max(case.wall) * 1000:.0f} ms"
        print(f"  {case.label}: wall range {spread}{'; ' + case.note.lstrip('; ') if case.note else ''}")
    ratio = {case.name: statistics.median(case.wall) / base_wall for case in cases}
    result("rerun: empty data directory, ms (AppTest, idle rerun)", base_wall * 1000, "—", None)
    result(f"rerun: {cases[1].label} ÷ empty data directory", ratio["audit"], f"≤ {AUDIT_TARGET}",
           _verdict(args, ratio["audit"] <= AUDIT_TARGET))
    result(f"rerun: {cases[2].label} ÷ empty data directory", ratio["conversations"], f"≤ {CONVERSATIONS_TARGET}",
           _verdict(args, ratio["conversations"] <= CONVERSATIONS_TARGET))
    result(f"rerun: {cases[3].label} ÷ empty data directory", ratio["open"], "stated", None)


# -- time to first token in chromium -----------------------------------------------------------------------------------

# Installed before each message: the moment Enter goes down in the chat input, and the moment the newest chat
# message first shows the scripted answer's first token ("You said: …"), both on the page's clock.
TIMER = """() => {
  const t = window.__ttft = {};
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && t.sent === undefined) t.sent = performance.now();
  }, true);
  const seen = () => {
    const messages = document.querySelectorAll('[data-testid="stChatMessage"]');
    if (t.sent === undefined || messages.length < 2 || t.first !== undefined) return;
    const last = messages[messages.length - 1];
    const content = last.querySelector('[data-testid="stChatMessageContent"]') || last;
    if (content.innerText.trim().startsWith('You')) { t.first = performance.now(); observer.disconnect(); }
  };
  const observer = new MutationObserver(seen);
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def _ttft_turn(page, url: str, n: int, timeout_ms: float) -> float:
    from bench.stack import wait_idle

    page.goto(url)  # a fresh page: a new conversation, so every turn is the same first turn (no summary call)
    box = page.get_by_test_id("stChatInputTextArea")
    box.wait_for(timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    page.evaluate(TIMER)
    box.fill(f"Please answer turn {n} briefly")
    box.press("Enter")
    page.wait_for_function("window.__ttft && window.__ttft.first !== undefined", timeout=timeout_ms)
    ttft = page.evaluate("window.__ttft.first - window.__ttft.sent") / 1000
    wait_idle(page, timeout_ms)  # the answer has ended before the next turn starts anywhere
    return ttft


def measure_ttft(args, base: Path) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    from bench.stack import LocalStack, chromium_options, sign_in

    empty_dir, audit_dir = base / "ttft-empty", base / "ttft-audit"
    empty_dir.mkdir(parents=True)
    write_audit_log(audit_dir / "audit", args.records)
    keep_aggregates(audit_dir)
    stacks = {"empty": LocalStack(empty_dir), "audit": LocalStack(audit_dir)}
    times: dict[str, list[float]] = {name: [] for name in stacks}
    try:
        for stack in stacks.values():
            stack.start(timeout=args.timeout)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(**chromium_options(*(s.server_cert for s in stacks.values())))
            try:
                pages = {}
                for name, stack in stacks.items():
                    page = browser.new_context().new_page()
                    page.set_default_timeout(args.timeout * 1000)
                    sign_in(page, stack.url, args.timeout * 1000)
                    pages[name] = page
                names = list(stacks)
                for turn in range(args.ttft_turns + 1):  # the first turn of each stack is a warm-up
                    for name in (names if turn % 2 == 0 else names[::-1]):
                        ttft = _ttft_turn(pages[name], stacks[name].url, turn, args.timeout * 1000)
                        if turn:
                            times[name].append(ttft)
            finally:
                browser.close()
    finally:
        for stack in stacks.values():
            stack.stop()
    return times


def report_ttft(times: dict[str, list[float]], args) -> None:
    empty, audit = statistics.median(times["empty"]), statistics.median(times["audit"])
    ratio = audit / empty
    print(f"\nchromium time to first token (Enter to the answer's first text), median of {args.ttft_turns} "
          f"alternating turns per stack, emulator time to first token 50 ms")
    for label, name, median in (("empty data directory", "empty", empty),
                                (f"{args.records:,}-record audit log", "audit", audit)):
        print(f"  {label + ':':32}{median * 1000:8.1f} ms  (range {min(times[name]) * 1000:.0f}–"
              f"{max(times[name]) * 1000:.0f} ms)")
    print(f"  ratio: {ratio:.3f}  (target <= {TTFT_TARGET})  {'OK' if ratio <= TTFT_TARGET else 'ABOVE TARGET'}")
    result(f"chromium time to first token: {args.records:,}-record audit log ÷ empty data directory", ratio,
           f"≤ {TTFT_TARGET}", _verdict(args, ratio <= TTFT_TARGET))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: 10,000 records, fewer runs and turns, no met/missed verdicts")
    parser.add_argument("--runs", type=int, help="measured reruns per case (default 15; 5 with --quick)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up reruns per case")
    parser.add_argument("--records", type=int, help=f"model calls in the audit log (default {RECORDS:,}; 10,000 with --quick)")
    parser.add_argument("--conversations", type=int, default=CONVERSATIONS)
    parser.add_argument("--turns", type=int, default=OPEN_TURNS, help="turns of the open conversation")
    parser.add_argument("--ttft-turns", type=int, help="measured chromium turns per stack (default 8; 3 with --quick)")
    parser.add_argument("--no-browser", action="store_true", help="skip the chromium time to first token")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds any one step may take")
    parser.add_argument("--keep", action="store_true", help="keep the data directories (their path is printed)")
    args = parser.parse_args()
    args.runs = args.runs or (5 if args.quick else 15)
    args.records = args.records or (10_000 if args.quick else RECORDS)
    args.ttft_turns = args.ttft_turns or (3 if args.quick else 8)

    # SIGTERM (e.g. a stopped `make bench`) unwinds like Ctrl-C, so the stacks' process groups are stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))
    base = Path(tempfile.mkdtemp(prefix="bench-rerun-"))
    here = os.getcwd()
    os.chdir(base)  # no stray .env from the checkout: only the settings set here
    try:
        cases = measure_reruns(args, base)
        report_reruns(cases, args)
        if args.no_browser:
            pass
        else:
            from bench.stack import chromium_available

            if not chromium_available():
                print("\nchromium time to first token skipped: Debian's chromium is not installed (make test installs it)")
            else:
                print("\nchromium: starting two stacks (empty, audit log)...", flush=True)
                report_ttft(measure_ttft(args, base), args)
    finally:
        os.chdir(here)
        if args.keep:
            print(f"data directories kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
