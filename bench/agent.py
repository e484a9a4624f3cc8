"""Agent overhead per tool step, in chromium, and tokens per agent turn against `assistant@1`, for one question.

The question is "What is on my calendar tomorrow?": the scripted engine answers the agent (`agent@1`) with one
streamed `my_calendar` tool call (finish_reason "tool_calls"), the tool reads the Microsoft Graph emulator with the
person's own on-behalf-of token, and a second model call quotes the result; `assistant@1` answers the same question
in one call, without tools.

Part 1, chromium against the real app: the emulators run in this process (bench/stack.py's InProcessStack), so this
process can see when the emulator finished an answer; `python -m localdev.stack` (LocalStack) runs them in a child,
and neither emulator's request record carries a time. The emulator's engine is wrapped to note, on this host's wall
clock (time.time()), when each answer's first piece and last piece were produced (the finish chunk follows at once);
Graph's and Azure OpenAI's request records get their arrival time the same way. In the page a MutationObserver notes
Date.now() when an st.status element (an expander) in the assistant's chat message first contains "my_calendar" (the
step), when the step shows its duration (done), when the answer's text is complete, and when the usage caption
appears. Both clocks are this
machine's wall clock, so the two sides subtract directly (Date.now() has 1 ms resolution).
  overhead per tool step = step in the page − end of the model's tool_calls answer (agent@1)
  baseline               = whole answer text in the page − end of the emulator's answer (assistant@1)
Two pages (one person, two browser sessions), one per chain; each turn starts a new conversation (the sidebar's
"New conversation", so the chain stays chosen and no summary call interferes); turns alternate between the chains,
the first of each is a warm-up. Scripted engine: 50 ms to the first token, 200 tokens/s, as LocalStack.

Part 2, no browser: the same question through the turn engine (engine.TurnEngine, the real model factory) against
in-process emulators, signed in for real (Graph on-behalf-of token for the tools); tokens per turn are prompt +
completion over every model call of the turn, from the turn's audit records (the usage the page shows), checked
against the emulator's own usage records.

Targets are "stated": the issue asks for the figures, and no timing is asserted anywhere. The one verdict is the
agent's model calls per turn against what agent@1 declares (`model_calls_per_turn`, which the page's cost estimate
multiplies by).

`python -m bench.agent [--turns N] [--token-turns N] [--no-browser] [--timeout S] [--keep]`
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.result import result

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

QUESTION = "What is on my calendar tomorrow?"
TOOL = "my_calendar"
CHAINS = {"agent": "Agent with tools", "assistant": "Assistant"}  # registry name -> title in the Chain selectbox
TTFT, RATE = 0.05, 200.0  # LocalStack's scripted engine

# -- wall-clock stamps on the emulators (this process) --------------------------------------------------------------


class TimedEngine:
    """An engine wrapped to note, per answer, the wall-clock time (time.time()) it started, produced its first piece
    and its last piece, and whether it called tools. Everything else is the wrapped engine's (pacing, the
    /_emulator/engine route)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[dict] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    # Pacing stays the wrapped engine's, also when changed through the emulator's /_emulator/engine route.
    time_to_first_token = property(lambda self: self.inner.time_to_first_token,
                                   lambda self, value: setattr(self.inner, "time_to_first_token", value))
    tokens_per_second = property(lambda self: self.inner.tokens_per_second,
                                 lambda self, value: setattr(self.inner, "tokens_per_second", value))

    def count_prompt_tokens(self, request) -> int:
        return self.inner.count_prompt_tokens(request)

    def generate(self, request):
        from localdev.engines import ToolCallPiece

        call = {"started": time.time(), "first": None, "ended": None, "tool_calls": False}
        self.calls.append(call)
        for piece in self.inner.generate(request):
            if call["first"] is None:
                call["first"] = time.time()
            call["tool_calls"] = call["tool_calls"] or isinstance(piece, ToolCallPiece)
            yield piece
        call["ended"] = time.time()  # the emulator sends finish_reason (and usage, [DONE]) right after this


class StampedRecords(list):
    """An emulator's `requests` list whose records get `bench_time`, the wall-clock time they were recorded (the
    request has arrived and been read)."""

    def append(self, record) -> None:
        if isinstance(record, dict):
            record["bench_time"] = time.time()
        super().append(record)


def observe(emulators) -> TimedEngine:
    emulators.aoai.requests = StampedRecords(emulators.aoai.requests)
    emulators.graph.requests = StampedRecords(emulators.graph.requests)
    timed = TimedEngine(emulators.aoai.engine)
    emulators.aoai.engine = timed
    return timed


# -- part 1: chromium ---------------------------------------------------------------------------------------------

# Installed before each message; every moment on the page's wall clock (Date.now()).
OBSERVER = """(marks) => {
  const t = window.__agent = {};
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && t.sent === undefined) t.sent = Date.now();
  }, true);
  const done = new RegExp(marks.stepDone);
  const seen = () => {
    if (t.sent === undefined) return;
    const messages = document.querySelectorAll('[data-testid="stChatMessage"]');
    if (messages.length < 2) return;
    const last = messages[messages.length - 1];
    const text = last.innerText;
    const now = Date.now();
    if (marks.step && (t.step === undefined || t.stepDone === undefined)) {
      // The step is st.status's element (an expander), not the answer's text naming the tool.
      const steps = Array.from(last.querySelectorAll('[data-testid="stExpander"]')).map((e) => e.innerText);
      if (t.step === undefined && steps.some((s) => s.includes(marks.step))) t.step = now;
      const finished = steps.find((s) => done.test(s));
      if (t.stepDone === undefined && finished !== undefined) { t.stepDone = now; t.stepLabel = finished; }
    }
    if (t.first === undefined && text.includes(marks.first)) t.first = now;
    if (t.answer === undefined && text.includes(marks.answer)) t.answer = now;
    if (t.caption === undefined && text.includes('prompt +')) t.caption = now;
    if (t.caption !== undefined && t.answer !== undefined) observer.disconnect();
  };
  const observer = new MutationObserver(seen);
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def page_marks(chain: str, deployment: str) -> dict:
    """Texts that mark the moments in the assistant's message (the scripted engine's answers, localdev/engines.py)."""
    if chain == "agent":
        return {"step": TOOL, "stepDone": rf"{TOOL} · \d+ ms", "first": "Here",
                "answer": "answering with 1 tool result."}
    return {"step": "", "stepDone": "$^", "first": "You", "answer": f"answering on deployment {deployment}."}


@dataclass
class Turn:
    chain: str
    page: dict
    calls: list[dict]
    graph: list[dict]
    model_requests: list[dict]

    def check(self) -> None:
        if self.chain == "agent":
            if len(self.calls) != 2 or not self.calls[0]["tool_calls"] or self.calls[1]["tool_calls"]:
                raise RuntimeError(f"agent turn: expected a tool_calls answer then a text answer, got {self.calls}")
            if not any(r["path"].lower().endswith("/calendarview") for r in self.graph):
                raise RuntimeError("agent turn: the Graph emulator saw no /me/calendarView request")
            if "step" not in self.page:
                raise RuntimeError(f"agent turn: the {TOOL} step never appeared in the page")
        elif len(self.calls) != 1 or self.calls[0]["tool_calls"]:
            raise RuntimeError(f"assistant turn: expected one text answer, got {self.calls}")

    def ms(self, later: float | None, earlier: float | None) -> float | None:
        return None if later is None or earlier is None else (later - earlier) * 1000

    @property
    def answer_call(self) -> dict:
        return self.calls[-1]

    @property
    def tool_call(self) -> dict:
        return self.calls[0]

    def page_s(self, name: str) -> float | None:
        value = self.page.get(name)
        return None if value is None else value / 1000


def choose_chain(page, name: str, timeout_ms: float) -> None:
    """The chain in the sidebar's "Chain" selectbox, as a person picks it; done when its description shows."""
    from bench.stack import wait_idle
    from chains.registry import get_chain

    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").filter(has_text="Chain").click(timeout=timeout_ms)
    page.get_by_role("option", name=CHAINS[name], exact=True).click(timeout=timeout_ms)
    sidebar.get_by_text(get_chain(name).description[:40]).wait_for(timeout=timeout_ms)
    wait_idle(page, timeout_ms)


def run_turn(page, chain: str, timed: TimedEngine, emulators, marks: dict, timeout_ms: float) -> Turn:
    from bench.stack import wait_idle

    messages = page.locator('[data-testid="stChatMessage"]')
    if messages.count():  # a new conversation: the chain stays chosen, no summary call, the same first turn each time
        page.get_by_test_id("stSidebar").get_by_role("button").filter(has_text="New conversation").first.click(
            timeout=timeout_ms)
        page.wait_for_function("document.querySelectorAll('[data-testid=\"stChatMessage\"]').length === 0",
                               timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    counts = len(timed.calls), len(emulators.graph.requests), len(emulators.aoai.requests)
    page.evaluate(OBSERVER, marks)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(QUESTION)
    box.press("Enter")
    page.wait_for_function("window.__agent && window.__agent.caption !== undefined && window.__agent.answer !== undefined",
                           timeout=timeout_ms)
    seen = page.evaluate("window.__agent")
    wait_idle(page, timeout_ms)  # the turn has ended before the next one starts anywhere
    turn = Turn(chain, seen, timed.calls[counts[0]:], emulators.graph.requests[counts[1]:],
                emulators.aoai.requests[counts[2]:])
    turn.check()
    return turn


def measure_page(args, base: Path) -> dict[str, list[Turn]]:
    from playwright.sync_api import sync_playwright

    from bench.stack import InProcessStack, chromium_options, sign_in
    from config.catalog import load_catalog

    deployment = load_catalog().default
    stack = InProcessStack(base / "stack", time_to_first_token=TTFT, tokens_per_second=RATE)
    turns: dict[str, list[Turn]] = {name: [] for name in CHAINS}
    timeout_ms = args.timeout * 1000
    try:
        stack.start(timeout=args.timeout)
        timed = observe(stack.emulators)
        print(f"stack: app {stack.url} (child), emulators in this process, engine {timed.name} "
              f"({TTFT * 1000:.0f} ms to the first token, {RATE:.0f} tokens/s)", flush=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(**chromium_options(stack.server_cert))
            try:
                pages = {}
                for name in CHAINS:
                    page = browser.new_context().new_page()
                    page.set_default_timeout(timeout_ms)
                    sign_in(page, stack.url, timeout_ms)
                    if name != "assistant":
                        choose_chain(page, name, timeout_ms)
                    pages[name] = page
                names = list(CHAINS)
                for number in range(args.turns + 1):  # the first turn of each chain is a warm-up (OBO token, imports)
                    for name in (names if number % 2 == 0 else names[::-1]):
                        turn = run_turn(pages[name], name, timed, stack.emulators, page_marks(name, deployment),
                                        timeout_ms)
                        if number:
                            turns[name].append(turn)
            except Exception:
                _diagnose(browser, stack)
                raise
            finally:
                browser.close()
    finally:
        stack.stop()
    return turns


def _diagnose(browser, stack) -> None:
    """What each page showed, and the app's last lines, when a step failed (every wait is bounded)."""
    for context in browser.contexts:
        for page in context.pages:
            try:
                text = page.inner_text("body", timeout=5_000)
            except Exception as exc:  # noqa: BLE001 - the page itself may be gone
                text = f"(unreadable: {type(exc).__name__})"
            print(f"page {page.url}:\n  " + "\n  ".join(text.splitlines()[-30:]), flush=True)
    print("app output:\n  " + "\n  ".join(stack.output[-30:]), flush=True)


def p95(values: list[float]) -> float:
    """Nearest rank: with fewer than 20 values, the largest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def median_ms(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:7.1f}"


def report_page(turns: dict[str, list[Turn]], args) -> None:
    agent, assistant = turns["agent"], turns["assistant"]
    overhead = [t.ms(t.page_s("step"), t.tool_call["ended"]) for t in agent]
    baseline = [t.ms(t.page_s("answer"), t.answer_call["ended"]) for t in assistant]
    agent_answer = [t.ms(t.page_s("answer"), t.answer_call["ended"]) for t in agent]
    print(f"\nchromium, {len(agent)} turns per chain (alternating, after one warm-up each), a new conversation per "
          f"turn; wall clock of this machine on both sides (time.time() in the emulators, Date.now() in the page)")
    print("\nagent@1, ms after the emulator finished the model's tool_calls answer (median / p95):")
    graph = [t.ms(next(r["bench_time"] for r in t.graph if r["path"].lower().endswith("/calendarview")),
                  t.tool_call["ended"]) for t in agent]
    second = [t.ms(t.model_requests[1]["bench_time"], t.tool_call["ended"]) if len(t.model_requests) > 1 else None
              for t in agent]
    first_piece = [t.ms(t.answer_call["first"], t.tool_call["ended"]) for t in agent]
    step_done = [t.ms(t.page_s("stepDone"), t.tool_call["ended"]) for t in agent]
    first_text = [t.ms(t.page_s("first"), t.tool_call["ended"]) for t in agent]
    rows = [("Graph /me/calendarView request arrives", graph),
            ("second model request arrives at the emulator", second),
            (f"its first text token produced (emulator TTFT {TTFT * 1000:.0f} ms)", first_piece),
            (f"the {TOOL} step appears in the page", overhead),
            ("the step shows its duration (done)", step_done),
            ("the answer's first text in the page", first_text)]
    for label, values in rows:
        present = [v for v in values if v is not None]
        print(f"  {label + ':':58}{_fmt(median_ms(values))} / {_fmt(p95(present) if present else None)}")
    durations = [int(m.group(1)) for t in agent
                 if (m := re.search(rf"{TOOL} · (\d+) ms", t.page.get("stepLabel") or ""))]
    if durations:
        print(f"  (the tool's own run time, as its step shows it: median {statistics.median(durations):.0f} ms)")
    behind = [t.ms(t.page_s("step"), t.answer_call["first"]) for t in agent]
    print(f"  the step in the page after the second call's first token:    {_fmt(median_ms(behind))} ms (median)")
    if all(b is not None and b > 0 for b in behind):
        print("  in every turn the step reached the page only after the second model call's first text token: the "
              "turn engine hands step events to the page between answer text chunks (engine/turn.py), and a "
              "tool_calls answer has no text")
    print("\nend of the emulator's final answer -> whole answer text in the page (median / p95):")
    print(f"  assistant@1 (baseline):{'':35}{_fmt(median_ms(baseline))} / {_fmt(p95(baseline))}")
    print(f"  agent@1 (its second call):{'':32}{_fmt(median_ms(agent_answer))} / {_fmt(p95(agent_answer))}")
    first_assistant = [t.ms(t.page_s("first"), t.answer_call["first"]) for t in assistant]
    print(f"  (assistant@1 first token produced -> in the page: {_fmt(median_ms(first_assistant)).strip()} ms median)")
    step_median, base_median = statistics.median(overhead), statistics.median(baseline)
    ratio = step_median / base_median
    print(f"\noverhead per tool step: median {step_median:.1f} ms, p95 {p95(overhead):.1f} ms "
          f"(range {min(overhead):.0f}–{max(overhead):.0f} ms)")
    print(f"baseline (assistant@1 end of answer -> text visible): median {base_median:.1f} ms, p95 {p95(baseline):.1f} ms")
    print(f"ratio overhead ÷ baseline (medians): {ratio:.2f}")
    result("agent: tool_calls finish -> step in the page, median ms (chromium)", step_median, "stated", None)
    result("agent: tool_calls finish -> step in the page, p95 ms (chromium)", p95(overhead), "stated", None)
    result("agent: assistant@1 end of answer -> text in the page, median ms (baseline)", base_median, "stated", None)
    result("agent: tool step overhead ÷ assistant@1 end-of-answer-to-visible (medians)", ratio, "stated", None)


# -- part 2: tokens per turn, in process ----------------------------------------------------------------------------


@dataclass
class TokenTurn:
    chain: str
    prompt: int
    completion: int
    model_calls: int
    estimated: bool
    emulator_prompt: int
    emulator_completion: int
    per_call: list[tuple[int, int]] = field(default_factory=list)  # (prompt, completion) per model call, emulator's
    tool_definition_tokens: list[int] = field(default_factory=list)  # per model call: prompt tokens the tools take
    tool_calls: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def measure_tokens(args, base: Path) -> list[TokenTurn]:
    from auth.credentials import GRAPH_SCOPE, app_token_provider, on_behalf_of_token_provider
    from auth.security_context import SecurityContext
    from auth.services import auth_services
    from callbacks.audit import AuditLog, session_reference
    from chains.registry import get_chain
    from config import load_settings
    from config.database import database_engine
    from engine import Asker, Choices, NewMessage, Outcome, TurnEngine
    from localdev.engines import ScriptedEngine
    from localdev.prompt_tokens import count_prompt_tokens
    from localdev.stack import TENANT_ID, TEST_USER, StackConfig, app_environment, start_emulators
    from memory.conversation import Conversation
    from memory.store import ConversationStore, Owner
    from store.files import FileStore
    from tests.integration.signin import sign_in

    data = base / "tokens"
    config = StackConfig(entra_port=0, aoai_port=0, graph_port=0, data_dir=data, engine="scripted")
    emulators = start_emulators(config)
    try:
        emulators.aoai.engine = ScriptedEngine()  # unpaced: the pace changes no token
        for name in list(os.environ):
            if name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_")):
                del os.environ[name]
        os.environ.update(app_environment(config, emulators))
        settings = load_settings(env_file=None)
        trip = sign_in(settings, emulators)  # a real sign-in: the Graph tools act with Ada's own token
        services = auth_services(settings)
        user_token, _ = services.signin.user_access_token(services.sessions.get(trip.session_id).token_cache)
        app_provider = app_token_provider(settings.entra)
        graph_provider = on_behalf_of_token_provider(settings.entra, user_token, GRAPH_SCOPE)
        who = Asker(Owner(TEST_USER.oid, TENANT_ID),
                    SecurityContext(settings.app.name, TEST_USER.oid, TENANT_ID, "127.0.0.1"),
                    session_reference(trip.session_id), token_provider=lambda: app_provider,
                    roles=frozenset(TEST_USER.roles), graph_token_provider=lambda: graph_provider)
        quiet = logging.getLogger("bench.agent.audit")
        quiet.propagate, quiet.disabled = False, True
        records: list[dict] = []
        store = ConversationStore(database_engine(None, data, "conversations.db"), FileStore(data / "images"))
        engine = TurnEngine(settings, store, AuditLog(quiet, [records.append]))
        deployment = settings.catalog.get(settings.catalog.default)
        turns = []
        for number in range(args.token_turns):
            for chain in (("assistant", "agent") if number % 2 == 0 else ("agent", "assistant")):
                choices = Choices(deployment, get_chain(chain), settings.app.default_max_output_tokens,
                                  settings.app.default_temperature)
                seen, audited = len(emulators.aoai.requests), len(records)
                events = list(engine.run(who, Conversation(), NewMessage(QUESTION), choices))
                outcome = events[-1]
                if not isinstance(outcome, Outcome) or outcome.failure or outcome.answer.usage is None:
                    raise RuntimeError(f"{chain} turn did not complete: {outcome}")
                calls = emulators.aoai.requests[seen:]
                usage = outcome.answer.usage
                per_call = [(r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"]) for r in calls]
                tools = [count_prompt_tokens(r["body"]["messages"], deployment.model, r["body"].get("tools"))
                         - count_prompt_tokens(r["body"]["messages"], deployment.model) for r in calls]
                tool_records = [r for r in records[audited:] if r.get("event") == "tool_call"]
                turns.append(TokenTurn(chain, usage.prompt_tokens, usage.completion_tokens, usage.model_calls,
                                       usage.estimated, sum(p for p, _ in per_call), sum(c for _, c in per_call),
                                       per_call, tools, len(tool_records)))
    finally:
        emulators.stop()
    return turns


def report_tokens(turns: list[TokenTurn], args) -> None:
    from chains.registry import get_chain

    by_chain = {name: [t for t in turns if t.chain == name] for name in ("assistant", "agent")}
    print(f"\ntokens per turn, \"{QUESTION}\", {args.token_turns} turns per chain, a new conversation each (turn engine, "
          "real model factory, in-process emulators; the turn's audit records, checked against the emulator's usage)")
    print("| chain | prompt | completion | total | model calls | tool calls | per call (prompt+completion) "
          "| tool definitions per call |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for name, chain_turns in by_chain.items():
        t = chain_turns[0]
        varied = {(x.prompt, x.completion) for x in chain_turns}
        note = "" if len(varied) == 1 else f" (varied: {sorted(varied)})"
        print(f"| {get_chain(name).label} | {statistics.median(x.prompt for x in chain_turns):.0f} | "
              f"{statistics.median(x.completion for x in chain_turns):.0f} | "
              f"{statistics.median(x.total for x in chain_turns):.0f}{note} | {t.model_calls} | {t.tool_calls} | "
              f"{', '.join(f'{p}+{c}' for p, c in t.per_call)} | {', '.join(map(str, t.tool_definition_tokens))} |")
    mismatched = [t for t in turns if (t.prompt, t.completion) != (t.emulator_prompt, t.emulator_completion)]
    estimated = [t for t in turns if t.estimated]
    print(f"audit usage = emulator usage in {len(turns) - len(mismatched)} of {len(turns)} turns"
          f"{'' if not estimated else f'; {len(estimated)} estimated with tiktoken'}")
    for t in mismatched:
        print(f"  {t.chain}: audit {t.prompt}+{t.completion}, emulator {t.emulator_prompt}+{t.emulator_completion}")
    agent_total = statistics.median(t.total for t in by_chain["agent"])
    assistant_total = statistics.median(t.total for t in by_chain["assistant"])
    ratio = agent_total / assistant_total
    calls = statistics.median(t.model_calls for t in by_chain["agent"])
    declared = get_chain("agent").model_calls_per_turn
    print(f"tokens per turn agent@1 ÷ assistant@1: {agent_total:.0f} ÷ {assistant_total:.0f} = {ratio:.2f} (the "
          f"scripted engine's answers: assistant@1 echoes the question; of agent@1's prompt tokens, "
          f"{sum(by_chain['agent'][0].tool_definition_tokens)} are tool definitions sent with each of its calls)")
    print(f"model calls per turn: agent@1 {calls:g} (declared {declared}), assistant@1 "
          f"{statistics.median(t.model_calls for t in by_chain['assistant']):g}")
    result("agent: tokens per turn agent@1 ÷ assistant@1, same question", ratio, "stated", None)
    result("agent: model calls per agent@1 turn", calls, f"= {declared} (declared)", calls == declared)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=8, help="measured chromium turns per chain (default 8)")
    parser.add_argument("--token-turns", type=int, default=3, help="in-process turns per chain for tokens (default 3)")
    parser.add_argument("--no-browser", action="store_true", help="tokens only, no chromium")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds any one step may take")
    parser.add_argument("--keep", action="store_true", help="keep the data directories (their path is printed)")
    args = parser.parse_args()

    # SIGTERM (e.g. a stopped `make bench`) unwinds like Ctrl-C, so the app's process group and emulators stop.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    here = os.getcwd()
    os.chdir(base)  # no stray .env from the checkout: only the settings set here
    try:
        report_tokens(measure_tokens(args, base), args)
        if not args.no_browser:
            from bench.stack import chromium_available

            if not chromium_available():
                print("\nchromium part skipped: Debian's chromium is not installed (make test installs it)")
            else:
                report_page(measure_page(args, base), args)
    finally:
        os.chdir(here)
        if args.keep:
            print(f"data directories kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"\nbench.agent took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
