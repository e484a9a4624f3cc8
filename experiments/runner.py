"""Runs every item of a dataset through the turn engine once per chain, then the pairwise judge, with a pool of
worker threads, and records each finished task as one line of `results.jsonl`.

Each (item, chain) is one engine turn on a fresh conversation holding the item's earlier messages, asked with the
app's identity (audited with origin "evaluation") and stored in the run's own SQLite database (`evaluation.db` next to
the results, never the people's conversations). A turn that Azure throttles (429) is run again once its retry-after
has passed, and meanwhile no worker starts a call. Each finished task is appended and fsynced before the next is
counted, so a crash loses at most the line being written; a new run reads the file back (cutting off a torn last line)
and does only what is missing. Ctrl-C stops the workers at their next event; what finished is kept.

Record shapes (one JSON object per line):
  {"kind": "run", ...}         one per start: dataset, chains, deployment, judge, settings
  {"kind": "answer", ...}      one per (item, chain)
  {"kind": "judgement", ...}   one per (item, pair of chains), when a judge is set
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from auth.security_context import SecurityContext
from callbacks.audit import AuditLog, configure_audit_log, session_reference
from chains.errors import classify
from chains.model_factory import build_chat_model
from chains.registry import REGISTRY
from chains.spec import ChainSpec
from config.catalog import Catalog, Deployment
from config.database import database_engine
from config.settings import Settings
from engine import Asker, Blocked, Choices, NewMessage, Outcome, TextDelta, TurnEngine, Upload
from experiments.dataset import Dataset, Item
from experiments.judge import JudgeCallFailed, build_judge_model, judge_audit_handler, judge_pair
from experiments.scorers import score
from memory.conversation import Conversation, Turn
from memory.store import ConversationStore, Owner
from store.files import FileStore

log = logging.getLogger("experiments.runner")

ANSWER, JUDGEMENT, RUN = "answer", "judgement", "run"
RESULTS_FILE, DATABASE_FILE = "results.jsonl", "evaluation.db"
ANSWERED = ("complete", "filtered")  # statuses of a turn the model really answered (a filter verdict is an answer)
REPLY_LIMIT = 200  # characters of each raw judge reply kept in the results


class PlanError(Exception):
    """The run cannot start as asked (unknown chain or deployment, results of another setup); nothing was called."""


# -- what to run ---------------------------------------------------------------------------------------------------
def resolve_chains(text: str, registry: dict[str, ChainSpec] = REGISTRY) -> tuple[ChainSpec, ...]:
    """`assistant@1,concise@1` (or bare names, meaning the current version) as chain specs."""
    valid = ", ".join(spec.label for spec in registry.values())
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise PlanError(f"--chains names no chain; the chains are: {valid}")
    chains: list[ChainSpec] = []
    for name in names:
        spec = registry.get(name.split("@", 1)[0])
        if spec is None or ("@" in name and spec.label != name):
            raise PlanError(f"unknown chain {name!r}; the chains are: {valid}")
        if spec.label in {c.label for c in chains}:
            raise PlanError(f"chain {spec.label} is named twice in --chains")
        chains.append(spec)
    return tuple(chains)


def resolve_deployment(catalog: Catalog, name: str, option: str = "--deployment") -> Deployment:
    try:
        return catalog.get(name)
    except KeyError:
        raise PlanError(f"unknown deployment {name!r} for {option}; the deployments are: "
                        f"{', '.join(catalog.names)}") from None


@dataclass(frozen=True)
class Plan:
    dataset: Dataset
    chains: tuple[ChainSpec, ...]
    deployment: Deployment
    out: Path
    judge: Deployment | None = None
    concurrency: int = 4
    max_output_tokens: int = 1000
    temperature: float | None = None
    max_attempts: int = 4  # per task, counting the first: a throttled turn is tried this often at most
    retry_failed: bool = False  # run again the answers that failed or were blocked in an earlier run

    def __post_init__(self) -> None:
        if not self.chains:
            raise PlanError("no chain to run")
        if self.judge is not None and len(self.chains) < 2:
            raise PlanError("--judge compares chains: name at least two in --chains")
        if self.concurrency < 1:
            raise PlanError("--concurrency must be at least 1")
        if self.max_attempts < 1:
            raise PlanError("max_attempts must be at least 1")

    @property
    def pairs(self) -> list[tuple[ChainSpec, ChainSpec]]:
        return list(itertools.combinations(self.chains, 2)) if self.judge is not None else []

    def planned(self) -> list[tuple]:
        """The key of every task of this run, answers before judgements for each item."""
        keys = []
        for item in self.dataset.items:
            keys += [answer_key(item.id, chain.label) for chain in self.chains]
            keys += [judgement_key(item.id, a.label, b.label) for a, b in self.pairs]
        return keys


def answer_key(item: str, chain: str) -> tuple:
    return (ANSWER, item, chain)


def judgement_key(item: str, a: str, b: str) -> tuple:
    return (JUDGEMENT, item, *sorted((a, b)))


def key_of(record: dict) -> tuple | None:
    try:
        if record.get("kind") == ANSWER:
            return answer_key(record["item"], record["chain"])
        if record.get("kind") == JUDGEMENT:
            return judgement_key(record["item"], *record["chains"])
    except (KeyError, TypeError, ValueError):
        pass
    return None


def needs_rerun(record: dict) -> bool:
    """With --retry-failed: answers that did not come back, and judgements that could not be made."""
    if record.get("kind") == ANSWER:
        return record.get("status") not in ANSWERED
    return record.get("verdict") == "not_judged" or bool(record.get("error"))


def failed(record: dict) -> bool:
    """An answer that did not come back, or a judgement whose calls failed (not one that had nothing to compare)."""
    if record.get("kind") == ANSWER:
        return record.get("status") not in ANSWERED
    return bool(record.get("error"))


# -- the results file ----------------------------------------------------------------------------------------------
class ResultsFile:
    """Append-only JSON lines, each flushed and fsynced before it counts as written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unreadable = 0  # lines that were not JSON objects (skipped)
        self._handle: TextIO | None = None
        self._lock = threading.Lock()

    def read(self) -> list[dict]:
        """The records in order. A torn last line (the process died while writing it) is cut off the file, so the
        next append starts on a line of its own."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
            log.warning("cut a torn last line (%d bytes) off %s", len(data) - end, self.path)
        records = []
        for raw in data[:end].splitlines():
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if isinstance(record, dict):
                records.append(record)
            elif raw.strip():
                self.unreadable += 1
        return records

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "a", encoding="utf-8")
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def latest(records: Iterable[dict]) -> dict[tuple, dict]:
    """The last record of each task (a task run again with --retry-failed has several)."""
    found: dict[tuple, dict] = {}
    for record in records:
        key = key_of(record)
        if key is not None:
            found[key] = record
    return found


# -- shared between workers ------------------------------------------------------------------------------------------
class Throttle:
    """After a 429 no worker starts a call until its retry-after has passed."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self, stop: threading.Event) -> bool:
        """Waits out any hold; False when the run is stopping."""
        while True:
            with self._lock:
                left = self._until - time.monotonic()
            if left <= 0:
                return not stop.is_set()
            if stop.wait(left):
                return False


class CallLog:
    """Audit listener: the model calls of each conversation, for the sum of their latencies."""

    def __init__(self) -> None:
        self._calls: dict[str, list[dict]] = defaultdict(list)
        self._lock = threading.Lock()

    def record(self, record: dict) -> None:
        if record.get("event") == "model_call" and record.get("conversation_id"):
            with self._lock:
                self._calls[record["conversation_id"]].append(record)

    def take(self, conversation_id: str) -> list[dict]:
        with self._lock:
            return self._calls.pop(conversation_id, [])


class Progress:
    """One line on stderr: a bar, done/total, elapsed and ETA. Redrawn in place on a terminal; otherwise (a pipe, a
    log) a new line every `interval` seconds and at the end."""

    def __init__(self, total: int, done: int, stream: TextIO | None, *, interval: float = 2.0, width: int = 28) -> None:
        self.total, self.done, self.first_done = total, done, done
        self.failed = 0
        self.stream, self.interval, self.width = stream, interval, width
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._shown = 0.0

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        share = self.done / self.total if self.total else 1.0
        filled = round(self.width * share)
        ran = self.done - self.first_done
        left = self.total - self.done
        eta = _clock(elapsed / ran * left) if ran and left else ("0:00" if not left else "--:--")
        failed = f"  {self.failed} failed" if self.failed else ""
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}  "
                f"elapsed {_clock(elapsed)}  ETA {eta}{failed}")

    def show(self, *, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self._shown < (0.2 if self.tty else self.interval):
            return
        self._shown = now
        self.stream.write(("\r" + self.line() + "\x1b[K") if self.tty else self.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        self.show(force=True)
        if self.tty and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# -- the run -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnswerTask:
    item: Item
    chain: ChainSpec


@dataclass(frozen=True)
class JudgeTask:
    item: Item
    a: ChainSpec
    b: ChainSpec
    answer_a: str
    answer_b: str


class _Interrupted(Exception):
    """The run is stopping: the task is abandoned and not recorded."""


@dataclass
class Summary:
    total: int  # tasks this plan has (answers and judgements)
    done: int  # of them finished, this run and earlier ones
    ran: int  # finished in this run
    failed: int  # answers of this run that did not come back, judgements that could not be made
    interrupted: bool
    results: Path
    seconds: float
    unfinished: list[str] = field(default_factory=list)


class Runner:
    def __init__(self, settings: Settings, plan: Plan, *, audit_log: AuditLog | None = None,
                 token_provider: Callable[[], str] | None = None, model_factory: Callable[..., object] = build_chat_model,
                 progress: TextIO | None = sys.stderr, progress_interval: float = 2.0, stop_grace: float = 30.0) -> None:
        self.settings, self.plan, self.model_factory = settings, plan, model_factory
        self.progress_stream, self.progress_interval, self.stop_grace = progress, progress_interval, stop_grace
        if audit_log is None:
            audit_log = AuditLog(configure_audit_log(settings.app.data_dir, to_stdout=settings.app.audit_stdout))
        self.calls = CallLog()
        audit_log.listeners.append(self.calls.record)
        self.audit_log = audit_log
        if token_provider is None:
            from auth.credentials import app_token_provider

            token_provider = app_token_provider(settings.entra, settings.azure_openai.scope)
        self.provider = token_provider
        self.results = ResultsFile(plan.out / RESULTS_FILE)
        self.stop = threading.Event()
        self.throttle = Throttle()
        self.session = session_reference(f"evaluation:{plan.out.resolve()}:{time.time_ns()}")
        # The app's own identity asks: the owner of the run's conversations is the app registration.
        self.owner = Owner(settings.entra.client_id, settings.entra.tenant_id)
        self.asker = Asker(self.owner, SecurityContext(settings.app.name), self.session,
                           token_provider=lambda: self.provider, origin="evaluation")
        self._records: list[dict] | None = None
        self._store: ConversationStore | None = None

    # -- before any call -----------------------------------------------------------------------------------------------
    def prepare(self) -> list[dict]:
        """Reads earlier results and checks they were made with this setup; raises PlanError. Calls nothing."""
        if self._records is None:
            records = self.results.read()
            runs = [r for r in records if r.get("kind") == RUN]
            if runs:
                earlier = runs[-1]
                judge = self.plan.judge.name if self.plan.judge else None
                if earlier.get("deployment") != self.plan.deployment.name or (
                        judge and earlier.get("judge") and earlier["judge"] != judge):
                    raise PlanError(
                        f"{self.results.path} holds results made with deployment {earlier.get('deployment')!r} "
                        f"(judge {earlier.get('judge')!r}); use another --out, or --restart to start over")
            self._records = records
        return self._records

    # -- running -----------------------------------------------------------------------------------------------------
    def run(self) -> Summary:
        plan, started = self.plan, time.monotonic()
        records = self.prepare()
        done = latest(records)
        if plan.retry_failed:
            done = {key: record for key, record in done.items() if not needs_rerun(record)}
        planned = plan.planned()
        self._done = done
        self._answers = {(r["item"], r["chain"]): r for r in done.values() if r.get("kind") == ANSWER}
        self._queued_judgements: set[tuple] = set()
        self._judge_ready: deque[JudgeTask] = deque()
        self._failed = 0
        self._items = {item.id: item for item in plan.dataset.items}
        plan.out.mkdir(parents=True, exist_ok=True)
        self._store = ConversationStore(database_engine(None, plan.out, DATABASE_FILE), FileStore(plan.out / "images"))
        self.results.append({
            "kind": RUN, "started_at": _now(), "dataset": str(plan.dataset.path), "items": len(plan.dataset.items),
            "skipped_lines": [p.line for p in plan.dataset.problems], "chains": [c.label for c in plan.chains],
            "deployment": plan.deployment.name, "judge": plan.judge.name if plan.judge else None,
            "concurrency": plan.concurrency, "max_output_tokens": plan.max_output_tokens,
            "temperature": plan.temperature,
        })
        ready = deque(AnswerTask(item, chain) for item in plan.dataset.items for chain in plan.chains
                      if answer_key(item.id, chain.label) not in done)
        progress = Progress(len(planned), sum(key in done for key in planned), self.progress_stream,
                            interval=self.progress_interval)
        self._progress, ran_before = progress, progress.done
        for item in plan.dataset.items:  # items answered in an earlier run may still wait for their judgement
            for a, b in plan.pairs:
                self._queue_judgement(item, a, b)
        tasks: queue.Queue = queue.Queue()
        finished: queue.Queue = queue.Queue()
        workers = [threading.Thread(target=self._work, args=(tasks, finished), name=f"evaluation-{n}", daemon=True)
                   for n in range(min(plan.concurrency, max(1, len(planned))))]
        for worker in workers:
            worker.start()
        in_flight, interrupted = 0, False
        progress.show(force=True)
        try:
            while True:
                while in_flight < len(workers) and (self._judge_ready or ready):
                    tasks.put(self._judge_ready.popleft() if self._judge_ready else ready.popleft())
                    in_flight += 1
                if not in_flight:
                    break
                try:
                    record = finished.get(timeout=0.25)
                except queue.Empty:
                    progress.show()
                    continue
                in_flight -= 1
                if record is not None:
                    self._accept(record)
                progress.show()
        except KeyboardInterrupt:
            interrupted = True
            self.stop.set()
            in_flight = self._drain(finished, in_flight)
        finally:
            self.stop.set()
            for _ in workers:
                tasks.put(None)
            self.results.close()
            progress.finish()
        unfinished = [f"{k[1]} ({' vs '.join(k[2:]) if k[0] == JUDGEMENT else k[2]})"
                      for k in planned if k not in self._done]
        return Summary(total=len(planned), done=progress.done, ran=progress.done - ran_before, failed=self._failed,
                       interrupted=interrupted or bool(unfinished), results=self.results.path,
                       seconds=time.monotonic() - started, unfinished=unfinished)

    def _drain(self, finished: queue.Queue, in_flight: int) -> int:
        """After Ctrl-C: keep what the workers finish within the grace period; a second Ctrl-C stops waiting."""
        deadline = time.monotonic() + self.stop_grace
        try:
            while in_flight and time.monotonic() < deadline:
                try:
                    record = finished.get(timeout=0.1)
                except queue.Empty:
                    continue
                in_flight -= 1
                if record is not None:
                    self._accept(record)
        except KeyboardInterrupt:
            pass
        return in_flight

    def _accept(self, record: dict) -> None:
        """Main thread only: write the record, count it, and queue the judgements it makes possible."""
        key = key_of(record)
        self.results.append(record)
        self._done[key] = record
        self._progress.done += 1
        if failed(record):
            self._failed += 1
            self._progress.failed += 1
        if record["kind"] == ANSWER:
            self._answers[(record["item"], record["chain"])] = record
            item = self._items[record["item"]]
            for a, b in self.plan.pairs:
                if record["chain"] in (a.label, b.label):
                    self._queue_judgement(item, a, b)

    def _queue_judgement(self, item: Item, a: ChainSpec, b: ChainSpec) -> None:
        key = judgement_key(item.id, a.label, b.label)
        first, second = self._answers.get((item.id, a.label)), self._answers.get((item.id, b.label))
        if key in self._done or key in self._queued_judgements or first is None or second is None:
            return
        self._queued_judgements.add(key)
        missing = [r for r in (first, second) if r.get("status") != "complete"]
        if missing:  # nothing to compare: recorded at once, no call
            reason = "; ".join(f"{r['chain']} did not answer ({r.get('failure') or r.get('status')})" for r in missing)
            self._accept(self._judgement_record(item, a, b, verdict="not_judged", reason=reason))
            return
        self._judge_ready.append(JudgeTask(item, a, b, first.get("answer", ""), second.get("answer", "")))

    # -- in the workers ------------------------------------------------------------------------------------------------
    def _work(self, tasks: queue.Queue, finished: queue.Queue) -> None:
        engine = TurnEngine(self.settings, self._store, self.audit_log, model_factory=self.model_factory)
        while True:
            task = tasks.get()
            if task is None:
                return
            try:
                record = self._answer(engine, task) if isinstance(task, AnswerTask) else self._judge(task)
            except _Interrupted:
                record = None
            except Exception as exc:  # noqa: BLE001 - a bug or an outage in one task must not end the run
                log.warning("evaluation task failed: %s", type(exc).__name__, exc_info=True)
                record = self._error_record(task, exc)
            finished.put(record)

    def _conversation(self, item: Item, chain: ChainSpec) -> Conversation:
        """A fresh conversation holding the item's earlier messages, as turns and as what the model remembers."""
        conversation = Conversation(title=f"evaluation {item.id}")
        for message in item.history:
            conversation.add(Turn(role=message.role, content=message.content,
                                  chain=chain.label if message.role == "assistant" else None))
        conversation.memory = conversation.model_messages()
        return conversation

    def _answer(self, engine: TurnEngine, task: AnswerTask) -> dict:
        plan, item = self.plan, task.item
        uploads = [Upload(path.name, path.read_bytes()) for path in item.images]
        choices = Choices(plan.deployment, task.chain, plan.max_output_tokens, plan.temperature)
        call_latency, calls = 0.0, 0
        for attempt in range(1, plan.max_attempts + 1):
            if not self.throttle.wait(self.stop):
                raise _Interrupted
            conversation = self._conversation(item, task.chain)
            started, first_token, end = time.perf_counter(), None, None
            events = engine.run(self.asker, conversation, NewMessage(item.question, uploads), choices)
            try:
                for event in events:
                    if isinstance(event, TextDelta) and first_token is None:
                        first_token = time.perf_counter()
                    elif isinstance(event, (Outcome, Blocked)):
                        end = event
                    if self.stop.is_set() and end is None:
                        raise _Interrupted  # closing the events below is Stop: the model's stream ends
            finally:
                events.close()
            latency = time.perf_counter() - started
            audited = self.calls.take(conversation.id)
            call_latency += sum(r.get("latency_ms") or 0 for r in audited)
            calls += len(audited)
            failure = end.failure if isinstance(end, Outcome) else None
            if failure is not None and failure.kind == "throttled" and attempt < plan.max_attempts:
                wait = failure.retry_after_seconds or min(2 ** attempt, 30)
                log.info("item %s on %s throttled; trying again in %s s", item.id, task.chain.label, wait)
                self.throttle.hold(wait)
                continue
            return self._answer_record(task, end, conversation, attempt, latency, first_token and
                                       first_token - started, call_latency, calls)
        raise AssertionError("unreachable")

    def _answer_record(self, task: AnswerTask, end: Outcome | Blocked | None, conversation: Conversation,
                       attempts: int, latency: float, ttft: float | None, call_latency_ms: float, calls: int) -> dict:
        item = task.item
        record = {"kind": ANSWER, "item": item.id, "chain": task.chain.label, "deployment": self.plan.deployment.name,
                  "tags": list(item.tags), "reference": item.reference, "scorer": item.scorer}
        if isinstance(end, Outcome):
            usage = end.answer.usage
            answer = end.answer.content
            record.update(status=end.status, failure=end.failure.kind if end.failure else None,
                          notice=end.answer.notice, answer=answer,
                          score=score(item.scorer, answer, item.reference) if end.status == "complete" else None,
                          prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0,
                          reasoning_tokens=usage.reasoning_tokens if usage else 0,
                          cost_usd=str(usage.cost_usd if usage else Decimal(0)))
        else:  # Blocked (nothing was sent), or no event at all
            record.update(status="blocked", failure=end.reason if end else "no_outcome",
                          notice=end.message if end else None, answer="", score=None, prompt_tokens=0,
                          completion_tokens=0, reasoning_tokens=0, cost_usd="0")
        record.update(ttft_ms=None if ttft is None else round(ttft * 1000, 1), latency_ms=round(latency * 1000, 1),
                      call_latency_ms=round(call_latency_ms, 1), model_calls=calls, attempts=attempts,
                      conversation_id=conversation.id, finished_at=_now())
        return record

    def _judge(self, task: JudgeTask) -> dict:
        plan = self.plan
        handler = judge_audit_handler(self.audit_log, plan.judge, owner_oid=self.owner.oid,
                                      tenant_id=self.owner.tenant_id, session=self.session,
                                      include_text=self.settings.app.audit_include_text)
        model = build_judge_model(self.settings, plan.judge, self.provider, handler,
                                  security_context=self.asker.security_context.as_payload(),
                                  model_factory=self.model_factory)

        def ask(messages) -> str:
            for attempt in range(1, plan.max_attempts + 1):
                if not self.throttle.wait(self.stop):
                    raise _Interrupted
                try:
                    return str(model.invoke(messages).text)
                except Exception as exc:  # noqa: BLE001 - classified: throttled waits, the rest is no verdict
                    failure = classify(exc)
                    if failure.kind == "throttled" and attempt < plan.max_attempts:
                        self.throttle.hold(failure.retry_after_seconds or min(2 ** attempt, 30))
                        continue
                    raise JudgeCallFailed(failure) from exc
            raise AssertionError("unreachable")

        started = time.perf_counter()
        judgement = judge_pair(ask, task.item, task.a.label, task.answer_a, task.b.label, task.answer_b)
        calls = [r for r in handler.records if r.get("event") == "model_call"]
        return self._judgement_record(
            task.item, task.a, task.b, verdict=judgement.verdict, winner=judgement.winner, first=judgement.first,
            second=judgement.second, replies=[r[:REPLY_LIMIT] for r in judgement.replies], error=judgement.error,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            call_latency_ms=float(sum(r.get("latency_ms") or 0 for r in calls)), model_calls=len(calls),
            prompt_tokens=sum(r.get("prompt_tokens") or 0 for r in calls),
            completion_tokens=sum(r.get("completion_tokens") or 0 for r in calls),
            reasoning_tokens=sum(r.get("reasoning_tokens") or 0 for r in calls),
            cost_usd=str(sum((Decimal(r.get("cost_usd") or 0) for r in calls), Decimal(0))))

    def _judgement_record(self, item: Item, a: ChainSpec, b: ChainSpec, **fields) -> dict:
        base = {"kind": JUDGEMENT, "item": item.id, "chains": [a.label, b.label], "judge": self.plan.judge.name,
                "tags": list(item.tags), "verdict": None, "winner": None, "first": None, "second": None,
                "replies": [], "error": None, "reason": None, "latency_ms": 0.0, "call_latency_ms": 0.0,
                "model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0, "cost_usd": "0"}
        return {**base, **fields, "finished_at": _now()}

    def _error_record(self, task, exc: Exception) -> dict:
        if isinstance(task, AnswerTask):
            return {"kind": ANSWER, "item": task.item.id, "chain": task.chain.label,
                    "deployment": self.plan.deployment.name, "tags": list(task.item.tags),
                    "reference": task.item.reference, "scorer": task.item.scorer, "status": "error",
                    "failure": "unknown", "notice": f"the run failed on this item ({type(exc).__name__})",
                    "answer": "", "score": None, "prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0,
                    "cost_usd": "0",
                    "ttft_ms": None, "latency_ms": None, "call_latency_ms": 0.0, "model_calls": 0, "attempts": 1,
                    "conversation_id": None, "finished_at": _now()}
        return self._judgement_record(task.item, task.a, task.b, verdict="no_verdict", error="unknown",
                                      reason=f"the judge failed ({type(exc).__name__})")
