"""Capacity of one replica, and of two behind the proxy, measured at the protocol level (bench/crowd.py): the server,
not the browsers.

Levels of 1, 10, 25, 50 and 100 people chatting at once on one replica (the scripted emulator paced like a real
deployment: first token after 0.5 s, then 40 tokens a second; no injected faults; each person reads an answer and sends
the next question 5–15 s later): p50/p95 time to the first visible answer text ÷ the single person's (level 1,
measured in the same run), server CPU per turn, memory per open session, throughput, and the largest level whose p95
stays within 2× the single person. Then one replica vs two behind docs/deployment.md's nginx on one Postgres, the same
crowd asking back to back (the load that saturates a replica): the throughput ratio. Then a crowd with 10% injected
faults: turns lost (goal 0) and cross-person leaks (goal 0).

`python -m bench.capacity [--levels 1,10,25,50,100 --turns 3]`; `make bench` runs it. The crowd runs as its own
process; the emulators run in this one; each app replica is a child. Every wait is bounded."""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.result import result
from bench.stack import free_port

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

TTFT_SECONDS, TOKENS_PER_SECOND = 0.5, 40.0
MEMORY_PROBE = 100  # pages opened at once to measure memory per open session
THINK_SECONDS = (5.0, 15.0)  # between an answer and the person's next question: reading it, typing the next one
RATIO_GOAL = 2.0
SCALE_GOAL = 1.8
FAULTS = ["429", "500", "cut", "prompt_filter"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, all cores (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return sum(fields) - idle, sum(fields)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class Level:
    people: int
    turns: list[dict] = field(default_factory=list)
    chat_seconds: float = 0.0
    open_seconds: float = 0.0
    cpu_seconds: float = 0.0  # the replicas' CPU during the chat phase
    rss_added_mib: float = 0.0  # the replicas' resident memory added by opening the pages
    rss_end_mib: float = 0.0  # the replica's resident memory after the level
    machine_busy: float = 0.0  # share of all the machine's cores busy during the chat phase (anything running)
    crowd_cpu_seconds: float = 0.0  # the load generator's own CPU over its whole run
    emulator_cpu_seconds: float = 0.0  # this process's CPU during the chat phase: the emulators (Entra, Azure OpenAI)
    sign_in_failures: list[str] = field(default_factory=list)
    missing_from_store: int = 0  # answered turns the store does not hold
    leaks: list[str] = field(default_factory=list)

    def add(self, crowd: dict) -> None:
        self.turns += crowd["turns"]
        self.chat_seconds += crowd["chat_seconds"]
        self.open_seconds += crowd["open_seconds"]
        self.sign_in_failures += crowd["sign_in_failures"]
        self.leaks += crowd["leaks"]

    def count(self, outcome: str) -> int:
        return sum(1 for t in self.turns if t["outcome"] == outcome)

    @property
    def ttfts(self) -> list[float]:
        return [t["ttft"] for t in self.turns if t["outcome"] == "completed" and t["ttft"] is not None]

    @property
    def p50(self) -> float:
        return statistics.median(self.ttfts) if self.ttfts else float("nan")

    @property
    def p95(self) -> float:
        return percentile(self.ttfts, 0.95) if self.ttfts else float("nan")

    @property
    def throughput(self) -> float:
        return self.count("completed") / self.chat_seconds if self.chat_seconds else 0.0

    @property
    def cpu_ms_per_turn(self) -> float:
        return 1000 * self.cpu_seconds / max(1, len(self.turns))

    @property
    def mib_per_session(self) -> float:
        return self.rss_added_mib / max(1, self.people)


class People:
    """Hands out account numbers (load-user-N) so that every crowd is made of people new to the app."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, count: int) -> int:
        first, self.next = self.next, self.next + count
        return first


def run_crowd(url: str, entra_ca: Path, first: int, people: int, turns: int, pids: list[int], level: Level,
              scratch: Path, timeout: float = 120.0, think: tuple[float, float] = (0.0, 0.0),
              start_within: float = 1.0) -> None:
    """One crowd (its own process): sign in and open every page, measure the replicas idle with all pages open, then
    chat; the replicas' CPU is counted over the chat phase only."""
    from localdev.stack import dies_with_this_process
    from tests.processes import Child

    go, out = scratch / f"go-{first}", scratch / f"crowd-{first}.json"
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # the crowd is the only child reaped in between
    rss_before = sum(rss_mib(p) for p in pids)
    child = Child([sys.executable, "-m", "bench.crowd", "--url", url, "--entra-ca", str(entra_ca), "--people",
                   str(people), "--first", str(first), "--turns", str(turns), "--timeout", str(timeout), "--go",
                   str(go), "--out", str(out), "--think", str(think[0]), str(think[1]), "--start-within",
                   str(start_within)], cwd=ROOT, preexec_fn=dies_with_this_process(), name=f"crowd of {people}")
    try:
        child.wait_for_line(r"\[crowd\] open", timeout=60 + 3 * people)  # kills the crowd and raises if it hangs
        time.sleep(1.0)  # the last page's run has ended; let the replicas settle
        level.rss_added_mib += sum(rss_mib(p) for p in pids) - rss_before
        cpu_before = sum(cpu_seconds(p) for p in pids)
        machine_before = machine_ticks()
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        go.touch()
        # Waits for the crowd to exit; raises (and kills it) if it does not.
        child.stop(None, timeout=timeout * (turns + 1) + start_within + think[1] * turns)
        level.cpu_seconds += sum(cpu_seconds(p) for p in pids) - cpu_before
        own = resource.getrusage(resource.RUSAGE_SELF)
        level.emulator_cpu_seconds += own.ru_utime + own.ru_stime - own_before.ru_utime - own_before.ru_stime
        busy, total = (after - before for after, before in zip(machine_ticks(), machine_before))
        level.machine_busy = busy / total if total else 0.0
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        level.crowd_cpu_seconds += now.ru_utime + now.ru_stime - reaped.ru_utime - reaped.ru_stime
    finally:
        child.kill()
    level.add(json.loads(out.read_text()))


@contextmanager
def emulators_for(scratch: Path, people: int, app_port: int):
    from localdev.stack import StackConfig, start_emulators

    config = StackConfig(app_port=app_port, entra_port=0, aoai_port=0, graph_port=0, data_dir=scratch / "emulators",
                         load_users=people, time_to_first_token=TTFT_SECONDS, tokens_per_second=TOKENS_PER_SECOND,
                         engine="scripted")
    emulators = start_emulators(config)
    try:
        yield config, emulators
    finally:
        emulators.stop()


@contextmanager
def replica(config, emulators, port: int, data_dir: Path, extra_env: dict[str, str] | None = None):
    """One app replica (streamlit run app.py) as `make run` starts it, on `port`; yields its process id."""
    from localdev.stack import StackConfig, app_environment, dies_with_this_process, streamlit_command, wait_healthy
    from tests.processes import Child

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_"))},
           **app_environment(config, emulators), "APP_DATA_DIR": str(data_dir),
           "APP_SIGNIN_REQUESTS_PER_MINUTE": "0",  # every simulated person signs in from 127.0.0.1
           **(extra_env or {})}
    child = Child(streamlit_command(StackConfig(app_port=port)), cwd=ROOT, env=env, capture=False,
                  preexec_fn=dies_with_this_process(), name=f"streamlit :{port}")
    try:
        if not wait_healthy(f"http://127.0.0.1:{port}", child.process, 120):
            child.fail(f"the replica on :{port} did not start")
        yield child.pid
    finally:
        child.stop(signal.SIGTERM, timeout=20, check=False)


def one_replica_levels(levels: list[int], turns: int, scratch: Path,
                       think: tuple[float, float] = THINK_SECONDS) -> tuple[list[Level], Level]:
    people, measured = People(), []
    port = free_port()
    total = 1 + MEMORY_PROBE + 3 + sum(levels) + 1
    with emulators_for(scratch, total, port) as (config, emulators), \
            replica(config, emulators, port, scratch / "one") as pid:
        url = config.public_url
        # A server that has answered before, as in production: the process's first turn loads what every later turn
        # reuses (imports, tokenizer, connections) and would otherwise be the single person's p95.
        run_crowd(url, emulators.tls.ca_file, people.take(1), 1, 2, [pid], Level(1), scratch)
        # Memory per open session: 100 people sign in and load the page on the warm server (no earlier sessions whose
        # freed memory the new ones could reuse), the replica's resident memory before and with all pages open.
        probe = Level(MEMORY_PROBE)
        run_crowd(url, emulators.tls.ca_file, people.take(MEMORY_PROBE), MEMORY_PROBE, 0, [pid], probe, scratch)
        for size in levels:
            level = Level(size)
            # The single person three times in a row (different people), so the baseline has as many first turns
            # per turn as the crowds do.
            for _ in range(3 if size == 1 else 1):
                run_crowd(url, emulators.tls.ca_file, people.take(size), size, turns, [pid], level, scratch,
                          think=think, start_within=sum(think) / 2)
            level.people = size
            measured.append(level)
            level.rss_end_mib = rss_mib(pid)
            print(f"[capacity] {size:>3} people: p50 {level.p50 * 1000:.0f} ms, p95 {level.p95 * 1000:.0f} ms, "
                  f"{level.count('completed')}/{len(level.turns)} completed, {level.throughput:.1f} turns/s",
                  file=sys.stderr, flush=True)
    return measured, probe


def proxy_comparison(people: int, turns: int, scratch: Path) -> tuple[Level, Level]:
    """The same crowd through nginx to one replica, then to two, each on one Postgres."""
    from tests.nginx import PROXY_ADDRESS, running_nginx
    from tests.postgres import running_postgres

    results = []
    for count in (1, 2):
        with ExitStack() as stack:
            database_url = stack.enter_context(running_postgres())
            proxy_port = free_port()
            config, emulators = stack.enter_context(emulators_for(scratch / f"proxy-{count}", people, proxy_port))
            env = {"APP_DATABASE_URL": database_url, "APP_TRUSTED_PROXIES": PROXY_ADDRESS}
            ports = [free_port() for _ in range(count)]
            pids = [stack.enter_context(replica(config, emulators, port, scratch / f"proxy-{count}-{port}", env))
                    for port in ports]
            url, _ = stack.enter_context(running_nginx(ports, port=proxy_port))
            level = Level(people)
            run_crowd(url, emulators.tls.ca_file, 0, people, turns, pids, level, scratch / f"proxy-{count}")
            results.append(level)
            print(f"[capacity] {count} replica(s) behind nginx, {people} people: {level.throughput:.1f} turns/s, "
                  f"p95 {level.p95 * 1000:.0f} ms; machine {100 * level.machine_busy:.0f}% busy, the replicas "
                  f"{level.cpu_seconds / level.chat_seconds:.2f} cores, the emulators "
                  f"{level.emulator_cpu_seconds / level.chat_seconds:.2f}, the crowd {level.crowd_cpu_seconds:.0f} s CPU",
                  file=sys.stderr, flush=True)
    return results[0], results[1]


def with_faults(people: int, turns: int, scratch: Path) -> Level:
    port = free_port()
    with emulators_for(scratch / "faults", people, port) as (config, emulators), \
            replica(config, emulators, port, scratch / "faults-app") as pid:
        emulators.aoai.set_fault_rate(0.10, FAULTS, seed=11)
        level = Level(people)
        run_crowd(config.public_url, emulators.tls.ca_file, 0, people, turns, [pid], level, scratch / "faults")
        stored = stored_questions(scratch / "faults-app", people)
    lost_in_store = level.count("completed") - stored  # every answered question is stored
    level.missing_from_store = max(0, lost_in_store)
    return level


def stored_questions(data_dir: Path, people: int) -> int:
    from config.database import database_engine
    from localdev.stack import TENANT_ID, load_users
    from memory.store import ConversationStore, Owner

    store = ConversationStore(database_engine(None, data_dir, "conversations.db"))
    count = 0
    for person in load_users(people):
        owner = Owner(person.oid, TENANT_ID)
        for summary in store.list(owner):
            count += sum(1 for t in store.load(owner, summary.id).turns if t.role == "user")
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,10,25,50,75,100")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--proxy-people", type=int, default=50)
    parser.add_argument("--fault-people", type=int, default=25)
    parser.add_argument("--skip-proxy", action="store_true")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    if levels[0] != 1:
        parser.error("the levels start with 1: the single person is the baseline")
    scratch = Path(tempfile.mkdtemp(prefix="capacity-"))
    started = time.monotonic()
    measured, probe = one_replica_levels(levels, args.turns, scratch)
    single = measured[0]
    print(f"capacity of one replica: scripted emulator (first token {TTFT_SECONDS} s, {TOKENS_PER_SECOND:g} tok/s), "
          f"{args.turns} questions per person, {THINK_SECONDS[0]:g}–{THINK_SECONDS[1]:g} s between an answer and the "
          f"next question, no faults; protocol-level crowd (bench/crowd.py); first text = the delta carrying the "
          f"answer's first words, as a browser receives it")
    print("| people | p50 first text | p95 first text | p50 ÷ 1 | p95 ÷ 1 | completed | turns/s | server CPU per turn "
          "| machine CPU busy | replica memory after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    fits = 1
    for level in measured:
        r50, r95 = level.p50 / single.p50, level.p95 / single.p95
        if r95 <= RATIO_GOAL and level.count("completed") == len(level.turns):
            fits = max(fits, level.people)
        print(f"| {level.people} | {level.p50 * 1000:.0f} ms | {level.p95 * 1000:.0f} ms | {r50:.2f} | {r95:.2f} | "
              f"{level.count('completed')}/{len(level.turns)} | {level.throughput:.1f} | {level.cpu_ms_per_turn:.0f} ms "
              f"| {100 * level.machine_busy:.0f}% | {level.rss_end_mib:.0f} MiB |")
    print(f"largest level with p95 ≤ {RATIO_GOAL:g}× the single person: {fits} people")
    print(f"memory per open session: {probe.mib_per_session:.2f} MiB ({MEMORY_PROBE} signed-in pages opened on the warm "
          f"replica: {probe.rss_added_mib:.0f} MiB resident added; {len(probe.sign_in_failures)} could not open)")
    for level in measured[1:]:
        result(f"capacity: {level.people} people, p95 first text ÷ single person", level.p95 / single.p95,
               f"≤ {RATIO_GOAL:g}" if level.people <= 50 else "stated", level.p95 / single.p95 <= RATIO_GOAL
               if level.people <= 50 else None)
    result("capacity: people per replica with p95 ≤ 2× single", fits, "≥ 50", fits >= 50)
    result("capacity: server CPU per turn at 50 people, ms", next((m.cpu_ms_per_turn for m in measured
                                                                  if m.people == 50), measured[-1].cpu_ms_per_turn),
           "stated", None)
    result("capacity: memory per open session, MiB", probe.mib_per_session, "stated", None)
    if not args.skip_proxy:
        one, two = proxy_comparison(args.proxy_people, args.turns, scratch)
        ratio = two.throughput / one.throughput if one.throughput else float("nan")
        print(f"two replicas vs one behind nginx ({args.proxy_people} people × {args.turns} questions back to back, "
              f"the saturating load): "
              f"{one.throughput:.1f} → {two.throughput:.1f} turns/s (×{ratio:.2f}); p95 first text "
              f"{one.p95 * 1000:.0f} → {two.p95 * 1000:.0f} ms")
        print(f"  the {os.cpu_count()} cores of this machine were {100 * one.machine_busy:.0f}% → "
              f"{100 * two.machine_busy:.0f}% busy (the replicas, and on the same cores the crowd, both emulators, "
              f"nginx and Postgres); the replicas used {one.cpu_seconds / one.chat_seconds:.2f} → "
              f"{two.cpu_seconds / two.chat_seconds:.2f} cores, the emulators (one process) "
              f"{one.emulator_cpu_seconds / one.chat_seconds:.2f} → {two.emulator_cpu_seconds / two.chat_seconds:.2f}")
        per_core = [level.count("completed") / level.cpu_seconds if level.cpu_seconds else float("nan")
                    for level in (one, two)]
        print(f"  turns per CPU-second the replicas used: {per_core[0]:.1f} → {per_core[1]:.1f} "
              f"(×{per_core[1] / per_core[0]:.2f}): the replicas scale with the cores they get; this host has "
              f"{os.cpu_count()} for everything")
        result("capacity: throughput two replicas ÷ one (behind nginx)", ratio, f"≥ {SCALE_GOAL}", ratio >= SCALE_GOAL)
        result("capacity: turns per replica CPU-second, two replicas ÷ one", per_core[1] / per_core[0], "stated", None)
    faults = with_faults(args.fault_people, args.turns, scratch)
    lost = faults.count("lost")
    print(f"with 10% injected faults ({', '.join(FAULTS)}), {args.fault_people} people × {args.turns}: "
          f"completed {faults.count('completed')}, failed with a clear message {faults.count('failed')}, lost {lost}, "
          f"leaks {len(faults.leaks)}, answered but missing from the store {faults.missing_from_store}; could not "
          f"sign in: {faults.sign_in_failures or 'none'}")
    result("capacity with 10% faults: turns lost", lost + faults.missing_from_store, "0",
           lost + faults.missing_from_store == 0 and not faults.sign_in_failures)
    result("capacity with 10% faults: cross-person leaks", len(faults.leaks), "0", not faults.leaks)
    print(f"({time.monotonic() - started:.0f} s)")
    return 0 if not lost and not faults.leaks else 1


if __name__ == "__main__":
    sys.exit(main())
