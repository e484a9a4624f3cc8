"""Where one replica's time goes under load: py-spy samples the server (only while a thread holds the GIL, so waits
do not count) while a protocol-level crowd chats back to back, then prints the product's functions and the library
frames that use the most of it.

`python -m bench.profile [--people 20 --turns 3]`. This is how bench/capacity.py's costs were found (docs/decisions.md,
"Capacity"). py-spy comes with requirements-dev.txt; it needs ptrace (root, or CAP_SYS_PTRACE in a container)."""
from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.capacity import Level, emulators_for, free_port, replica, run_crowd

PRODUCT = ("ui/", "engine/", "memory/", "auth/", "callbacks/", "chains/", "config/", "web/", "documents/")


def summarise(raw: Path, top: int) -> list[str]:
    """py-spy's raw (collapsed) stacks: inclusive share per product function, self share per library frame."""
    inclusive, leaves, total = collections.Counter(), collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, samples = stack.split(";"), int(count)
        total += samples
        for frame in set(frames):
            if any(f"({package}" in frame for package in PRODUCT):
                inclusive[frame] += samples
        leaves[frames[-1]] += samples
    if not total:
        return ["no samples"]
    lines = [f"{total} samples while holding the GIL", "product functions (including what they call):"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["frames where the time is spent (self):"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in leaves.most_common(top)]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed (make install-dev installs it)")
        return 1
    scratch = Path(tempfile.mkdtemp(prefix="profile-"))
    raw = scratch / "stacks.txt"
    port = free_port()
    with emulators_for(scratch, args.people + 1, port) as (config, emulators), \
            replica(config, emulators, port, scratch / "app") as pid:
        run_crowd(config.public_url, emulators.tls.ca_file, 0, 1, 2, [pid], Level(1), scratch)  # warm up
        sampler = subprocess.Popen([spy, "record", "--pid", str(pid), "--gil", "--nonblocking", "--rate", "100",
                                    "--format", "raw", "--output", str(raw)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            level = Level(args.people)
            run_crowd(config.public_url, emulators.tls.ca_file, 1, args.people, args.turns, [pid], level, scratch)
        finally:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
            try:
                sampler.wait(60)
            except subprocess.TimeoutExpired:
                sampler.kill()
    print(f"{args.people} people × {args.turns} questions back to back: {level.count('completed')} completed, "
          f"server CPU {level.cpu_ms_per_turn:.0f} ms per turn")
    print("\n".join(summarise(raw, args.top) if raw.exists() else ["py-spy wrote nothing (ptrace not allowed?)"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
