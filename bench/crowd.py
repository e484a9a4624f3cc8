"""A crowd of simulated people on one app URL, at the protocol level (bench/streamlit_client.py): `python -m
bench.crowd --url URL --entra-ca CA --people N --turns T --out result.json`.

Everyone signs in through the real sign-in (a few at a time, as people arrive), opens the page, and once all pages are
open everyone chats at once: T questions, each tagged with a marker unique to the person and turn, either back to back
or with a think time between an answer and the next question. The result file holds every turn's timing and outcome,
the chat phase's start and end, sign-in and page failures, and cross-person leaks (any drawn text carrying another
person's marker). Run as its own process so the crowd's CPU never shares a GIL with the emulators or the server being
measured; every wait is bounded."""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.streamlit_client import StreamlitPerson, TurnTiming, sign_in

MARKER = re.compile(r"\[p(\d+)t\d+\]")
# Long enough that the scripted answer streams for about two seconds at 40 tokens a second.
QUESTION = ("{marker} please explain in a few sentences how our expense policy treats train tickets, hotel nights and "
            "meals when a trip is cancelled at short notice")


async def _arrive(n: int, url: str, entra_ca: Path, gate: asyncio.Semaphore, timeout: float,
                  failures: list[str]) -> StreamlitPerson | None:
    async with gate:
        try:
            cookie = await sign_in(url, f"load-user-{n}@contoso.example", entra_ca, timeout)
            person = StreamlitPerson(url, cookie, timeout=timeout)
            await person.open()
            return person
        except Exception as exc:  # noqa: BLE001 - counted; the others go on
            failures.append(f"person {n}: {type(exc).__name__}: {str(exc)[:120]}")
            return None


async def _chat(n: int, person: StreamlitPerson, turns: int, start_within: float,
                think: tuple[float, float]) -> list[TurnTiming]:
    await asyncio.sleep(random.uniform(0, start_within))  # not all in the same millisecond
    timings = []
    for t in range(turns):
        if t:
            await asyncio.sleep(random.uniform(*think))  # reading the answer, typing the next question
        timings.append(await person.ask(QUESTION.format(marker=f"[p{n}t{t}]")))
    return timings


async def crowd(url: str, entra_ca: Path, people: list[int], turns: int, timeout: float, arrivals: int,
                start_within: float, go: Path | None = None, think: tuple[float, float] = (0.0, 0.0)) -> dict:
    failures: list[str] = []
    gate = asyncio.Semaphore(arrivals)
    opened_at = time.monotonic()
    arrived = await asyncio.gather(*(_arrive(n, url, entra_ca, gate, timeout, failures) for n in people))
    present = [(n, p) for n, p in zip(people, arrived) if p is not None]
    ready_at = time.monotonic()
    print(f"[crowd] {len(present)} of {len(people)} pages open in {ready_at - opened_at:.1f} s", file=sys.stderr,
          flush=True)
    if go is not None:
        # The orchestrator measures the server with every page open and idle, then creates the `go` file.
        print("[crowd] open", flush=True)
        deadline = time.monotonic() + timeout
        while not go.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{go} did not appear within {timeout:g} s")
            await asyncio.sleep(0.05)
    started = time.monotonic()
    results = await asyncio.gather(*(_chat(n, p, turns, start_within, think) for n, p in present))
    ended = time.monotonic()
    leaks = []
    for (n, person), _ in zip(present, results):
        others = {int(m) for text in person.texts for m in MARKER.findall(text)} - {n}
        leaks += [f"page of person {n} shows person {o}" for o in sorted(others)]
    await asyncio.gather(*(p.close() for _, p in present))
    return {
        "people": len(people), "opened": len(present), "turns_per_person": turns,
        "open_seconds": ready_at - opened_at, "chat_seconds": ended - started,
        "sign_in_failures": failures, "leaks": leaks,
        "turns": [{"person": n, **asdict(t), "ttft": t.ttft} for (n, _), timings in zip(present, results)
                  for t in timings],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--entra-ca", type=Path, required=True)
    parser.add_argument("--people", type=int, required=True)
    parser.add_argument("--first", type=int, default=0, help="account number of the first person (load-user-N)")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds any single wait may take")
    parser.add_argument("--arrivals", type=int, default=8, help="people signing in and opening the page at once")
    parser.add_argument("--start-within", type=float, default=1.0, help="first questions spread over this many s")
    parser.add_argument("--think", type=float, nargs=2, default=(0.0, 0.0), metavar=("MIN", "MAX"),
                        help="seconds between an answer and the person's next question (uniform); 0 0: back to back")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--go", type=Path, help="once every page is open, print '[crowd] open' and wait for this file")
    args = parser.parse_args()
    people = list(range(args.first, args.first + args.people))
    result = asyncio.run(crowd(args.url, args.entra_ca, people, args.turns, args.timeout, args.arrivals,
                               args.start_within, args.go, tuple(args.think)))
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
