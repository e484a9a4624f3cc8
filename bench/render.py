"""The page in chromium against two baselines measured in the same run: render throughput (tokens per second that
appear in the product's page ÷ what a direct openai SDK stream receives from the emulator; target ≥ 0.97) and the time
from pressing Enter to the answer's first visible text (the product's page ÷ a minimal Streamlit page that streams
AzureChatOpenAI from the same endpoint, bench/minimal_page.py; target ≤ 1.1 with the emulator's first token after
500 ms, bench/capacity.py's pacing; also stated, with the difference in ms, at 50 ms); and the audit callback's cost
per token.

The emulator's scripted engine emits a fixed ~600-token answer at 500 tokens/s. A MutationObserver in each page times
Enter, the answer's first text and its growth to the end marker. Each question goes to a new page (a new
conversation), product and minimal alternating.

The Responses API part (issue 31), in the same run after the classic one: the product on Azure's v1 API (the local
stack as `LOCALDEV_API_VERSION=v1` starts it, default deployment gpt-5-mini-thinking, whose reasoning summary streams
in a "Thinking" step above the answer) against a minimal Streamlit page that streams ChatOpenAI with the Responses API
from the same emulator (bench/minimal_responses_page.py): Enter to the summary's first visible text, and Enter to the
answer's first text (first answer token after 500 ms; the emulator sends the summary at once), each product ÷ minimal
with target ≤ 1.1. `--only responses` runs only this part, `--only classic` only the one before.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.result import result
from bench.stack import chromium_available, chromium_options, free_port, wait_idle

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

TARGET = 0.97
FIRST_TEXT_TARGET = 1.1
RATE = 500.0
TTFT = 0.05
REALISTIC_TTFT = 0.5  # bench/capacity.py's pacing, a deployment's usual first-token delay
ANSWER = " ".join(f"word{i % 97}" for i in range(300))  # ~600 tokens with o200k_base

# Per page: when Enter was pressed in the chat input, when the answer's first text showed (the scripted reply's first
# token, "answer"; each page holds one question), and every growth of the answer's text until its end marker showed.
OBSERVER = """(marker) => {
  window.__run = {marker, sent: null, first: null, growth: []};
  if (window.__observing) return;
  window.__observing = true;
  document.addEventListener('keydown', e => {
    if (e.key === 'Enter' && window.__run.sent === null) window.__run.sent = performance.now(); }, true);
  new MutationObserver(() => {
    const run = window.__run, now = performance.now();
    const answer = [...document.querySelectorAll('[data-testid="stChatMessage"]')]
      .map(m => m.innerText).find(text => text.includes('answer'));  // the reply's first token: one answer per page
    if (!answer) return;
    if (run.first === null) run.first = now;
    run.growth.push([now, answer.length, answer.includes('end-' + run.marker)]);
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


# The Responses part, per page: when Enter was pressed, when the reasoning summary's first text showed (the emulator's
# scripted summary begins "**Considering the question**"; a collapsed step's text is not in innerText, so this is the
# visible text), when the answer's first text showed ("answer-<question>": the summary says "answer" too) and when its
# end marker did.
THINKING_OBSERVER = """(marker) => {
  window.__thinking = {marker, sent: null, summary: null, first: null, done: null};
  if (window.__observingThinking) return;
  window.__observingThinking = true;
  document.addEventListener('keydown', e => {
    if (e.key === 'Enter' && window.__thinking.sent === null) window.__thinking.sent = performance.now(); }, true);
  new MutationObserver(() => {
    const run = window.__thinking, now = performance.now();
    if (run.sent === null || run.done !== null) return;
    const texts = [...document.querySelectorAll('[data-testid="stChatMessage"]')].map(m => m.innerText);
    if (run.summary === null && texts.some(text => text.includes('Considering'))) run.summary = now;
    if (run.first === null && texts.some(text => text.includes('answer-' + run.marker))) run.first = now;
    if (texts.some(text => text.includes('end-' + run.marker))) run.done = now;
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
THINKING_DEPLOYMENT = "gpt-5-mini-thinking"


def reply(request) -> str:
    """The scripted answer: a marker made of the question, the fixed text, an end marker."""
    from localdev.engines import last_user_text

    question = last_user_text(request.messages)
    return f"answer-{question} {ANSWER} end-{question}"


def sdk_rate(settings, provider) -> float:
    import openai

    client = openai.AzureOpenAI(azure_endpoint=settings.azure_openai.endpoint, api_version=settings.azure_openai.api_version,
                                azure_ad_token_provider=provider)
    times = []
    for chunk in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "go"}], stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0])


class ChatPage:
    """One chromium page on a chat (the product, signed in; or the minimal page): ask, and read back when Enter was
    pressed, when the answer's first text showed and when all of it had."""

    def __init__(self, browser, url: str, signed_in: bool) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.goto(url)
        if signed_in:
            self.page.get_by_text("Sign in with Microsoft").click(timeout=60_000)
            self.page.get_by_text("Signed in as").wait_for(timeout=60_000)
        wait_idle(self.page)

    def ask(self, marker: str) -> dict:
        self.page.evaluate(OBSERVER, marker)
        box = self.page.get_by_test_id("stChatInputTextArea")
        box.fill(marker)
        box.press("Enter")
        self.page.wait_for_function("() => window.__run.growth.some(g => g[2])", timeout=60_000)
        wait_idle(self.page)
        return self.page.evaluate("window.__run")

    def close(self) -> None:
        self.context.close()


class ThinkingChatPage(ChatPage):
    """A chat page on a reasoning deployment of the Responses API: ask, and read back when Enter was pressed, when the
    reasoning summary's first text showed, when the answer's first text showed and when all of it had."""

    def ask(self, marker: str) -> dict:
        self.page.evaluate(THINKING_OBSERVER, marker)
        box = self.page.get_by_test_id("stChatInputTextArea")
        box.fill(marker)
        box.press("Enter")
        self.page.wait_for_function("() => window.__thinking.done !== null", timeout=60_000)
        wait_idle(self.page)
        run = self.page.evaluate("window.__thinking")
        if run["summary"] is None or run["first"] is None:
            raise RuntimeError(f"the page never showed the reasoning summary or the answer's first text: {run}")
        return run


def thinking_runs(product_url: str, minimal_url: str, server_cert: Path, runs: int) -> dict[str, list[dict]]:
    """Each run asks a new page of each kind one question, product and minimal alternating."""
    from playwright.sync_api import sync_playwright

    measured: dict[str, list[dict]] = {"product": [], "minimal": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**chromium_options(server_cert))
        try:
            for index in range(runs):
                for kind, url in (("product", product_url), ("minimal", minimal_url)):
                    page = ThinkingChatPage(browser, url, signed_in=kind == "product")
                    try:
                        measured[kind].append(page.ask(f"r{index}{kind[0]}"))
                    finally:
                        page.close()
        finally:
            browser.close()
    return measured


def first_text_ms(run: dict) -> float:
    return run["first"] - run["sent"]


def render_rate(run: dict, tokens: int) -> float:
    """Tokens per second from the first visible answer text to the moment the whole answer was there."""
    start = run["growth"][0][0]
    end = next(t for t, _, complete in run["growth"] if complete)
    return (tokens - 1) / ((end - start) / 1000)


def browser_runs(product_url: str, minimal_url: str, server_cert: Path, runs: int, engine) -> dict[tuple, list[dict]]:
    """Each run asks a new page of each kind one question (a fresh conversation, as the minimal page always is), at
    each first-token delay of the emulator, product and minimal alternating so machine noise hits both alike."""
    from playwright.sync_api import sync_playwright

    measured: dict[tuple, list[dict]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**chromium_options(server_cert))
        try:
            for index in range(runs):
                for ttft in (TTFT, REALISTIC_TTFT):
                    engine.time_to_first_token = ttft  # the emulator reads it for each request
                    for kind, url in (("product", product_url), ("minimal", minimal_url)):
                        page = ChatPage(browser, url, signed_in=kind == "product")
                        try:
                            measured.setdefault((kind, ttft), []).append(page.ask(f"q{index}{kind[0]}{ttft:g}"))
                        finally:
                            page.close()
        finally:
            browser.close()
    return measured


def callback_overhead(tokens: int = 5000) -> float:
    """Microseconds the audit handler adds per streamed token (fake model, no network)."""
    import logging

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from callbacks.audit import AuditContext, AuditHandler
    from config.catalog import load_catalog

    text = " ".join("x" for _ in range(tokens))
    context = AuditContext("o", "t", None, "s", "c", "assistant@1", "gpt-4o", "app")

    def run(callbacks) -> float:
        model = GenericFakeChatModel(messages=iter([AIMessage(content=text)]))
        start = time.perf_counter()
        for _ in model.stream("q", config={"callbacks": callbacks}):
            pass
        return time.perf_counter() - start

    from localdev import LOCAL_CATALOG_FILE

    logging.getLogger("bench.audit").disabled = True
    deployment = load_catalog(LOCAL_CATALOG_FILE).get("gpt-4o")  # the local tenant's (the default catalog has no gpt-4o)
    bare, audited = [], []
    for _ in range(11):  # interleaved, so machine noise hits both alike
        bare.append(run([]))
        audited.append(run([AuditHandler(context, deployment, logger=logging.getLogger("bench.audit"))]))
    return (statistics.median(audited) - statistics.median(bare)) / (2 * tokens - 1) * 1e6  # words and spaces


def streamlit_page(script: str, port: int, env: dict, name: str):
    from tests.processes import Child

    return Child([sys.executable, "-m", "streamlit", "run", str(ROOT / "bench" / script), "--server.port", str(port),
                  "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                 cwd=ROOT, env=env, capture=False, name=name)


def classic_part(config, emulators, runs: int):
    """Today's measurements on the classic API: the SDK baseline and the browser runs (None: a page did not start)."""
    from auth.credentials import app_token_provider
    from config import load_settings
    from localdev.stack import app_environment, streamlit_command, wait_healthy
    from tests.processes import Child

    env = {**os.environ, **app_environment(config, emulators)}
    os.environ.update(app_environment(config, emulators))
    settings = load_settings(env_file=None)
    request = type("R", (), {"deployment": settings.catalog.get("gpt-4o"),
                             "messages": [{"role": "user", "content": "q0p"}]})()
    tokens = len(emulators.aoai.engine.pieces(request))
    minimal_port = free_port()
    app = Child(streamlit_command(config), cwd=ROOT, env=env, capture=False, name="streamlit")
    minimal = streamlit_page("minimal_page.py", minimal_port, env, "minimal page")
    minimal_url = f"http://127.0.0.1:{minimal_port}"
    try:
        if not (wait_healthy(config.public_url, app.process) and wait_healthy(minimal_url, minimal.process)):
            print("a page did not start")
            return None
        baseline = statistics.median(sdk_rate(settings, app_token_provider(settings.entra)) for _ in range(3))
        measured = browser_runs(config.public_url, minimal_url, emulators.tls.cert_file, runs, emulators.aoai.engine)
    finally:
        try:
            minimal.stop(signal.SIGTERM, timeout=20, check=False)
        finally:
            app.stop(signal.SIGTERM, timeout=20)
    return tokens, baseline, measured


def responses_part(config, emulators, runs: int):
    """The product on the v1 API (same port, so the registered sign-in redirect holds) against the minimal Responses
    page, the first answer token after 500 ms (None: a page did not start)."""
    from dataclasses import replace

    from localdev.stack import app_environment, streamlit_command, wait_healthy
    from tests.processes import Child

    v1 = replace(config, api_version="v1")
    env = {**os.environ, **app_environment(v1, emulators)}
    emulators.aoai.engine.time_to_first_token = REALISTIC_TTFT
    minimal_port = free_port()
    app = Child(streamlit_command(v1), cwd=ROOT, env=env, capture=False, name="streamlit v1")
    minimal = streamlit_page("minimal_responses_page.py", minimal_port, env, "minimal Responses page")
    minimal_url = f"http://127.0.0.1:{minimal_port}"
    try:
        if not (wait_healthy(v1.public_url, app.process) and wait_healthy(minimal_url, minimal.process)):
            print("a page did not start (Responses part)")
            return None
        return thinking_runs(v1.public_url, minimal_url, emulators.tls.cert_file, runs)
    finally:
        try:
            minimal.stop(signal.SIGTERM, timeout=20, check=False)
        finally:
            app.stop(signal.SIGTERM, timeout=20)


def report_classic(tokens: int, baseline: float, runs: dict, count: int) -> None:
    overhead = callback_overhead()
    rendered = {kind: statistics.median(render_rate(run, tokens) for run in runs[(kind, TTFT)])
                for kind in ("product", "minimal")}
    first = {key: statistics.median(first_text_ms(run) for run in measured) for key, measured in runs.items()}
    ratio = rendered["product"] / baseline
    first_ratio = first[("product", REALISTIC_TTFT)] / first[("minimal", REALISTIC_TTFT)]
    fast_ratio = first[("product", TTFT)] / first[("minimal", TTFT)]
    print(f"chromium, medians of {count} questions per page and setting ({tokens} tokens emitted at {RATE:.0f} tok/s)")
    print(f"  render throughput (first token after {TTFT * 1000:.0f} ms):")
    print(f"    direct openai SDK receives: {baseline:8.1f} tok/s")
    print(f"    product page renders:       {rendered['product']:8.1f} tok/s  (ratio {ratio:.3f}, target >= {TARGET})")
    print(f"    minimal page renders:       {rendered['minimal']:8.1f} tok/s  (ratio {rendered['minimal'] / baseline:.3f})")
    for ttft, shown in ((REALISTIC_TTFT, first_ratio), (TTFT, fast_ratio)):
        product, minimal_ms = first[("product", ttft)], first[("minimal", ttft)]
        print(f"  Enter to first answer text, first token after {ttft * 1000:.0f} ms: product {product:.0f} ms, minimal "
              f"page {minimal_ms:.0f} ms (ratio {shown:.3f}, {product - minimal_ms:+.0f} ms)"
              + (f", target <= {FIRST_TEXT_TARGET}" if ttft == REALISTIC_TTFT else ""))
    print(f"  audit callback overhead: {overhead:.1f} µs per token")
    result(f"render throughput: page tok/s ÷ SDK tok/s at {RATE:.0f} tok/s", ratio, f"≥ {TARGET}", ratio >= TARGET)
    result("browser Enter to first answer text: product ÷ minimal Streamlit page (first token at 500 ms)", first_ratio,
           f"≤ {FIRST_TEXT_TARGET}", first_ratio <= FIRST_TEXT_TARGET)
    result("browser Enter to first answer text: product ÷ minimal page (first token at 50 ms)", fast_ratio, "stated",
           None)
    result("audit callback overhead, µs per token", overhead, "—", None)


def report_responses(runs: dict[str, list[dict]], count: int) -> None:
    marks = (("summary", "first reasoning summary text"), ("first", "first answer text"))
    print(f"chromium, Responses API on v1 ({THINKING_DEPLOYMENT}: reasoning summary sent at once, then the answer, "
          f"first answer token after {REALISTIC_TTFT * 1000:.0f} ms, {RATE:.0f} tok/s), medians of {count} questions "
          "per page:")
    for mark, what in marks:
        each = {kind: [run[mark] - run["sent"] for run in measured] for kind, measured in runs.items()}
        product, minimal_ms = statistics.median(each["product"]), statistics.median(each["minimal"])
        ratio = product / minimal_ms
        print(f"  Enter to {what}: product {product:.0f} ms, minimal Responses page {minimal_ms:.0f} ms (ratio "
              f"{ratio:.3f}, {product - minimal_ms:+.0f} ms), target <= {FIRST_TEXT_TARGET}")
        print(f"    each run, ms: product {', '.join(f'{v:.0f}' for v in each['product'])}; "
              f"minimal {', '.join(f'{v:.0f}' for v in each['minimal'])}")
        result(f"browser Responses API, Enter to {what}: product ÷ minimal Streamlit page", ratio,
               f"≤ {FIRST_TEXT_TARGET}", ratio <= FIRST_TEXT_TARGET)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="questions to each page, alternating")
    parser.add_argument("--responses-runs", type=int, default=None,
                        help="questions to each page in the Responses part (default: --runs)")
    parser.add_argument("--only", choices=("classic", "responses"), default=None,
                        help="run only the classic API part or only the Responses API part (default: both)")
    args = parser.parse_args()
    responses_count = args.responses_runs or args.runs
    if not chromium_available():
        print("render benchmark skipped: Debian's chromium is not installed (make test installs it)")
        return 0
    from localdev.engines import ScriptedEngine
    from localdev.stack import StackConfig, start_emulators

    config = StackConfig(app_port=free_port(), entra_port=0, aoai_port=0, graph_port=0, data_dir=Path(tempfile.mkdtemp(prefix="bench-render-")))
    emulators = start_emulators(config)
    emulators.aoai.engine = ScriptedEngine(time_to_first_token=TTFT, tokens_per_second=RATE, reply=reply)
    classic = responses = None
    try:
        if args.only != "responses":
            classic = classic_part(config, emulators, args.runs)
            if classic is None:
                return 1
        if args.only != "classic":
            responses = responses_part(config, emulators, responses_count)
            if responses is None:
                return 1
    finally:
        emulators.stop()
    try:
        if classic is not None:
            report_classic(*classic, args.runs)
    finally:  # the Responses figures are printed even if the classic report fails
        if responses is not None:
            report_responses(responses, responses_count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
