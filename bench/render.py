"""Render throughput: tokens per second that appear in the page (chromium) ÷ tokens per second the emulator emits,
measured in one run; and the audit callback's overhead per token.

The emulator's scripted engine emits a fixed ~600-token answer at 500 tokens/s. The baseline rate is what a direct
openai SDK stream receives from it in this run; the page rate comes from a MutationObserver in chromium timing when
the answer's text grows, from the first visible token to the last. Target: ratio >= 0.95.
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

from bench.result import result  # noqa: E402
from bench.stack import chromium_available, chromium_options, free_port  # noqa: E402
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

TARGET = 0.95
RATE = 500.0
ANSWER = " ".join(f"word{i % 97}" for i in range(300))  # ~600 tokens with o200k_base

OBSERVER = """() => {
  window.__growth = [];
  const seen = new WeakSet();
  const watch = () => {
    const messages = document.querySelectorAll('[data-testid="stChatMessage"]');
    const last = messages[messages.length - 1];
    if (last) window.__growth.push([performance.now(), last.innerText.length]);
  };
  new MutationObserver(watch).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def sdk_rate(settings, provider) -> float:
    import openai

    client = openai.AzureOpenAI(azure_endpoint=settings.azure_openai.endpoint, api_version=settings.azure_openai.api_version,
                                azure_ad_token_provider=provider)
    times = []
    for chunk in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "go"}], stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0])


def page_rate(url: str, server_cert: Path, tokens: int) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**chromium_options(server_cert))
        page = browser.new_page()
        page.goto(url)
        page.get_by_text("Sign in with Microsoft").click(timeout=60_000)
        page.get_by_text("Signed in as").wait_for(timeout=60_000)
        page.evaluate(OBSERVER)
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill("go")
        box.press("Enter")
        page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("prompt +").wait_for(timeout=60_000)
        growth = page.evaluate("window.__growth")
        browser.close()
    answer_growth = [(t, n) for t, n in growth if n > 0]
    # From the first visible answer text to the moment the whole answer was there (before the usage caption).
    final_length = max(n for _, n in answer_growth if n <= len(ANSWER) + 50)
    start = next(t for t, n in answer_growth if n > 2)
    end = next(t for t, n in answer_growth if n >= final_length)
    return (tokens - 1) / ((end - start) / 1000)


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

    logging.getLogger("bench.audit").disabled = True
    deployment = load_catalog().get("gpt-4o")
    bare, audited = [], []
    for _ in range(11):  # interleaved, so machine noise hits both alike
        bare.append(run([]))
        audited.append(run([AuditHandler(context, deployment, logger=logging.getLogger("bench.audit"))]))
    return (statistics.median(audited) - statistics.median(bare)) / (2 * tokens - 1) * 1e6  # words and spaces


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    if not chromium_available():
        print("render benchmark skipped: Debian's chromium is not installed (make test installs it)")
        return 0
    from auth.credentials import app_token_provider
    from config import load_settings
    from localdev.engines import ScriptedEngine
    from localdev.stack import StackConfig, app_environment, start_emulators, streamlit_command, wait_healthy
    from tests.processes import Child

    config = StackConfig(app_port=free_port(), entra_port=0, aoai_port=0, graph_port=0, data_dir=Path(tempfile.mkdtemp(prefix="bench-render-")))
    emulators = start_emulators(config)
    emulators.aoai.engine = ScriptedEngine(time_to_first_token=0.05, tokens_per_second=RATE, reply=lambda _request: ANSWER)
    env = {**os.environ, **app_environment(config, emulators)}
    os.environ.update(app_environment(config, emulators))
    settings = load_settings(env_file=None)
    tokens = len(emulators.aoai.engine.pieces(type("R", (), {"deployment": settings.catalog.get("gpt-4o")})()))
    app = Child(streamlit_command(config), cwd=ROOT, env=env, capture=False, name="streamlit")
    try:
        if not wait_healthy(config.public_url, app.process):
            print("the app did not start")
            return 1
        baseline = statistics.median(sdk_rate(settings, app_token_provider(settings.entra)) for _ in range(3))
        rendered = statistics.median(page_rate(config.public_url, emulators.tls.cert_file, tokens) for _ in range(3))
    finally:
        try:
            app.stop(signal.SIGTERM, timeout=20)
        finally:
            emulators.stop()
    overhead = callback_overhead()
    ratio = rendered / baseline
    print(f"render throughput, median of 3 runs ({tokens} tokens emitted at {RATE:.0f} tok/s)")
    print(f"  direct openai SDK receives:   {baseline:8.1f} tok/s")
    print(f"  page renders (chromium):      {rendered:8.1f} tok/s")
    print(f"  ratio: {ratio:.3f}  (target >= {TARGET})  {'OK' if ratio >= TARGET else 'BELOW TARGET'}")
    print(f"  audit callback overhead: {overhead:.1f} µs per token")
    result("render throughput: page tok/s ÷ SDK tok/s at 500 tok/s", ratio, f"≥ {TARGET}", ratio >= TARGET)
    result("audit callback overhead, µs per token", overhead, "—", None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
