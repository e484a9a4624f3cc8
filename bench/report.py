"""`make bench`: run every benchmark in bench/, then write docs/bench-report.md: one table of ratios against their
targets (each measured against a baseline taken in the same run), the machine's description, and each benchmark's
own output. Ratios are reported as measured, met or missed."""
from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import ChildFailure
from tests.processes import run as run_benchmark

REPORT = ROOT / "docs" / "bench-report.md"
HAND_WRITTEN = "<!-- Written by hand below this line: bench/report.py keeps it. -->"


def kept_by_hand() -> str:
    """The report's hand-written part (figures over time, their reasons), kept as it is across runs."""
    old = REPORT.read_text() if REPORT.exists() else ""
    return "\n" + old[old.index(HAND_WRITTEN):] if HAND_WRITTEN in old else ""
TIMEOUT_SECONDS = 1800  # per benchmark; the longest (capacity: five levels, two proxy runs, faults) takes about 10 minutes
BENCHMARKS = [
    ("bench.conformance", []),
    ("bench.ttft", []),
    ("bench.render", []),
    ("bench.memory", []),
    ("bench.rerun", []),
    ("bench.agent", []),
    ("bench.documents", []),
    ("bench.hostile_documents", []),
    ("bench.experiment", []),
    ("bench.admin", []),
    ("bench.search", []),
    ("bench.capacity", []),
    ("bench.load", ["--users", os.environ.get("BENCH_LOAD_USERS", "12"), "--turns", os.environ.get("BENCH_LOAD_TURNS", "4")]),
]
OPTIONAL = [("bench.local_engine", [])]  # present once the local-model engine lands


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")).split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} × {cpu}{memory}, "
            f"Python {platform.python_version()}")


def main() -> int:
    rows, outputs = [], []
    for module, args in BENCHMARKS + [b for b in OPTIONAL if (ROOT / (b[0].replace(".", "/") + ".py")).exists()]:
        print(f"[bench] {module} {' '.join(args)}", flush=True)
        started = time.monotonic()
        command = [sys.executable, "-m", module, *args]
        try:
            run = run_benchmark(command, timeout=TIMEOUT_SECONDS, cwd=ROOT, capture_output=True, text=True)
        except ChildFailure as failure:  # reported like a crash, and the next benchmark runs
            run = subprocess.CompletedProcess(command, -signal.SIGKILL, failure.output,
                                              f"no result within {TIMEOUT_SECONDS} s; its process group was killed")
        seconds = time.monotonic() - started
        lines = run.stdout.splitlines()
        for line in lines:
            if line.startswith("RESULT|"):
                _, name, value, target, verdict = line.split("|")
                rows.append((name, value, target, verdict))
        shown = [line for line in lines if not line.startswith("RESULT|")]
        if run.returncode not in (0, 1):
            shown.append(f"(exit {run.returncode}) {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ''}")
        print("\n".join(shown), flush=True)
        outputs.append((module, seconds, shown))
    table = ["| benchmark | measured | target | |", "|---|---:|---|---|"]
    table += [f"| {name} | {value} | {target} | {verdict} |" for name, value, target, verdict in rows]
    text = [
        "# Benchmark report",
        "",
        f"Written by `make bench` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}.",
        "Every ratio divides the product's figure by a baseline measured in the same run on the same machine.",
        "",
        *table,
        "",
    ]
    for module, seconds, shown in outputs:
        text += [f"## `python -m {module}` ({seconds:.0f} s)", "", "```", *shown, "```", ""]
    REPORT.write_text("\n".join(text) + kept_by_hand())
    print("\n".join(table))
    print(f"[bench] report written to {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
