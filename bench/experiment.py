"""Offline evaluation overlap: wall time of a 50-item, 2-chain run at concurrency 4 ÷ the sum of its model calls'
latencies (from the audit records), in one run against the in-process emulators (scripted engine paced like a model:
0.3 s to the first token, 40 tokens/s). 1.0 would be no overlap at all; 0.25 is four calls always in flight.
Target: <= 0.30.
"""
from __future__ import annotations

import argparse
import io
import json
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

TARGET = 0.30
TOPICS = ("travel policy", "expense claims", "password resets", "meeting rooms", "parental leave", "laptop refresh",
          "VPN access", "security training", "office hours", "team budgets")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--ttft", type=float, default=0.3, help="emulator time to first token, seconds")
    parser.add_argument("--tokens-per-second", type=float, default=40.0)
    args = parser.parse_args()

    from auth.credentials import app_token_provider
    from config import load_settings
    from experiments.dataset import load_dataset
    from experiments.runner import Plan, Runner, resolve_chains
    from localdev.engines import ScriptedEngine
    from localdev.stack import StackConfig, app_environment, start_emulators

    work = Path(tempfile.mkdtemp(prefix="bench-experiment-"))
    config = StackConfig(entra_port=0, aoai_port=0, graph_port=0, data_dir=work / "data")
    emulators = start_emulators(config)
    emulators.aoai.engine = ScriptedEngine(time_to_first_token=args.ttft, tokens_per_second=args.tokens_per_second)
    os.environ.update(app_environment(config, emulators))
    settings = load_settings(env_file=None)
    dataset_file = work / "bench.jsonl"
    dataset_file.write_text("".join(
        json.dumps({"id": f"q{n}", "question": f"Question {n}: what does our {TOPICS[n % len(TOPICS)]} say, briefly?",
                    "reference": TOPICS[n % len(TOPICS)], "tags": [TOPICS[n % len(TOPICS)]]}) + "\n"
        for n in range(args.items)))
    provider = app_token_provider(settings.entra)
    provider()  # the token is fetched once and cached, as in the app
    plan = Plan(dataset=load_dataset(dataset_file), chains=resolve_chains("assistant@1,concise@1"),
                deployment=settings.catalog.get("gpt-4o"), out=work / "out", concurrency=args.concurrency,
                max_output_tokens=300, temperature=0.7)
    try:
        runner = Runner(settings, plan, token_provider=provider, progress=io.StringIO())
        started = time.perf_counter()
        summary = runner.run()
        wall = time.perf_counter() - started
    finally:
        emulators.stop()
    answers = [json.loads(line) for line in (work / "out" / "results.jsonl").read_text().splitlines()]
    answers = [r for r in answers if r["kind"] == "answer"]
    calls_ms = sum(r["call_latency_ms"] for r in answers)
    turns_ms = [r["latency_ms"] for r in answers]
    failed = [r for r in answers if r["status"] != "complete"]
    if summary.interrupted or failed or len(answers) != 2 * args.items:
        print(f"the run did not finish cleanly: {len(answers)} answers, {len(failed)} failed")
        return 1
    ratio = wall / (calls_ms / 1000)
    print(f"offline evaluation: {args.items} items × 2 chains, concurrency {args.concurrency}, emulator TTFT "
          f"{args.ttft * 1000:.0f} ms at {args.tokens_per_second:g} tokens/s")
    print(f"  wall time of the run:          {wall:8.2f} s")
    print(f"  sum of model call latencies:   {calls_ms / 1000:8.2f} s  ({sum(r['model_calls'] for r in answers)} calls)")
    print(f"  turn latency median / max:     {statistics.median(turns_ms) / 1000:8.2f} s / {max(turns_ms) / 1000:.2f} s")
    print(f"  wall time ÷ sum of turn latencies (the engine's own work included): {wall / (sum(turns_ms) / 1000):.3f}")
    print(f"  ratio: {ratio:.3f}  (ideal {1 / args.concurrency:.3f}; target <= {TARGET})  "
          f"{'OK' if ratio <= TARGET else 'ABOVE TARGET'}")
    result("offline evaluation: wall time ÷ sum of call latencies (50 items × 2 chains, concurrency 4)", ratio,
           f"≤ {TARGET}", ratio <= TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
