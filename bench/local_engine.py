"""Local engine overhead: tokens per second streamed through the Azure OpenAI emulator (TLS, token check, SSE, the
openai SDK) ÷ tokens per second of raw `llama_cpp.Llama.generate` on the same prompt tokens, in one run, greedy.
Also the resident memory the loaded model adds. Target: ratio >= 0.90."""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

from bench.result import result

TARGET = 0.90
TOKENS = 96
MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a short paragraph about keeping passwords safe at work."}]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    from localdev.llama_engine import LlamaEngine, local_engine_available

    reason = local_engine_available()
    if reason:
        print(f"local engine benchmark skipped: {reason}")
        return 0
    import openai

    from config import load_settings
    from localdev.engines import ChatRequest
    from localdev.stack import StackConfig, app_environment, start_emulators

    before = rss_mib()
    engine = LlamaEngine(max_waiting=4)
    loaded = rss_mib() - before
    config = StackConfig(entra_port=0, aoai_port=0, graph_port=0, data_dir=Path(tempfile.mkdtemp(prefix="bench-llm-")))
    emulators = start_emulators(config)
    emulators.aoai.engine = engine
    os.environ.update(app_environment(config, emulators))
    settings = load_settings(env_file=None)
    client = openai.AzureOpenAI(azure_endpoint=settings.azure_openai.endpoint, api_version=settings.azure_openai.api_version,
                                azure_ad_token=emulators.entra.cognitive_services_token())
    prompt = engine.prompt_tokens(ChatRequest(deployment=settings.catalog.get("gpt-4o"), messages=MESSAGES))

    def raw() -> float:
        start, count = None, 0
        with engine.exclusive():  # the emulator may still be finishing its last token on the same model
            generator = engine.llm.generate(prompt, temp=0, reset=True)
            for count, token in enumerate(generator, 1):
                start = start or time.perf_counter()
                if token == engine.llm.token_eos() or count >= TOKENS:
                    break
            generator.close()
        return (count - 1) / (time.perf_counter() - start)

    def served() -> float:
        times = []
        for chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, temperature=0,
                                                    max_tokens=TOKENS):
            if chunk.choices and chunk.choices[0].delta.content:
                times.append(time.perf_counter())
        return (len(times) - 1) / (times[-1] - times[0])

    try:
        raw_rates, served_rates = [], []
        for _ in range(5):  # interleaved
            raw_rates.append(raw())
            served_rates.append(served())
    finally:
        emulators.stop()
    ratio = statistics.median(served_rates) / statistics.median(raw_rates)
    print(f"local engine (SmolLM2-135M-Instruct, llama.cpp), {TOKENS} tokens greedy, median of 5 interleaved runs")
    print(f"  raw llama_cpp.Llama.generate:     {statistics.median(raw_rates):7.1f} tok/s")
    print(f"  through the emulator (SSE, SDK):  {statistics.median(served_rates):7.1f} tok/s")
    print(f"  ratio: {ratio:.3f}  (target >= {TARGET})  {'OK' if ratio >= TARGET else 'BELOW TARGET'}")
    print(f"  memory of the loaded model: {loaded:.0f} MiB resident")
    result("local engine: emulator tok/s ÷ raw llama.cpp tok/s", ratio, f"≥ {TARGET}", ratio >= TARGET)
    result("local engine: resident memory of the loaded model, MiB", loaded, "—", None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
