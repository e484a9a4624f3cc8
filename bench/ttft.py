"""Time to first token through the product path ÷ a direct openai SDK call to the same emulator, in one run.

Product path: build_chat_model + build_assistant + stream, as the page does for every turn.
Baseline: openai.AzureOpenAI(...).chat.completions.create(stream=True) with the same token provider.
Both run against the local Azure OpenAI emulator (scripted engine, fixed 50 ms time to first token), interleaved
A B A B so machine noise hits both alike. Target: ratio of medians <= 1.15.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.result import result

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

TARGET = 1.15
QUESTION = "Summarise our travel policy in one paragraph."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--ttft", type=float, default=0.05, help="emulator time to first token, seconds")
    args = parser.parse_args()

    import openai
    from langchain_core.messages import HumanMessage

    from auth.credentials import app_token_provider
    from chains.assistant import DEFAULT_SYSTEM_PROMPT, build_assistant
    from chains.model_factory import build_chat_model
    from config import load_settings
    from localdev.engines import ScriptedEngine
    from localdev.stack import StackConfig, app_environment, start_emulators

    config = StackConfig(entra_port=0, aoai_port=0, graph_port=0, data_dir=Path(tempfile.mkdtemp(prefix="bench-")))
    emulators = start_emulators(config)
    emulators.aoai.engine = ScriptedEngine(time_to_first_token=args.ttft, tokens_per_second=None)
    os.environ.update(app_environment(config, emulators))
    settings = load_settings(env_file=None)
    deployment = settings.catalog.get("gpt-4o")
    provider = app_token_provider(settings.entra)
    provider()  # the token is fetched once and cached, as in the app

    def product() -> float:
        start = time.perf_counter()
        model = build_chat_model(settings, deployment, provider, user_security_context={"application_name": settings.app.name})
        for chunk in build_assistant(model).stream({"messages": [HumanMessage(QUESTION)]}):
            if chunk.text:
                return time.perf_counter() - start
        raise RuntimeError("no token")

    client = openai.AzureOpenAI(azure_endpoint=settings.azure_openai.endpoint, api_version=settings.azure_openai.api_version,
                                azure_ad_token_provider=provider)

    def baseline() -> float:
        start = time.perf_counter()
        stream = client.chat.completions.create(
            model=deployment.name, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": QUESTION}],
            extra_body={"user_security_context": {"application_name": settings.app.name}},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                elapsed = time.perf_counter() - start
                stream.close()
                return elapsed
        raise RuntimeError("no token")

    try:
        for _ in range(3):  # warm-up: imports, TLS sessions, JWKS cache
            product(), baseline()
        a, b = [], []
        for _ in range(args.runs):
            a.append(product())
            b.append(baseline())
    finally:
        emulators.stop()
    ratio = statistics.median(a) / statistics.median(b)
    print(f"time to first token, median of {args.runs} interleaved runs (emulator TTFT {args.ttft * 1000:.0f} ms)")
    print(f"  product path (AzureChatOpenAI via chain): {statistics.median(a) * 1000:8.1f} ms")
    print(f"  direct openai SDK:                        {statistics.median(b) * 1000:8.1f} ms")
    print(f"  ratio: {ratio:.3f}  (target <= {TARGET})  {'OK' if ratio <= TARGET else 'ABOVE TARGET'}")
    result("time to first token: product path ÷ direct openai SDK", ratio, f"≤ {TARGET}", ratio <= TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
