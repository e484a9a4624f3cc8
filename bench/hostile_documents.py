"""Hostile documents: what the hostile-within-limits corpus costs the product on this machine, and what a large index
costs the other people on the same database.

1. Worst-case extraction time: every file of tests/hostile_files.py (the variants the tests use too) read through
   documents.worker.read_document with the product's default limits (AppSettings: deadline 30 s, 1,024 MB, 2 workers,
   20 MB, 500 pages, 100,000 rows; `--deadline` lowers the deadline for a quick run). Per file: read or refused (the
   reason) and the wall time; then the worst time ÷ the deadline. Target: every file done within the deadline plus
   the start and stop of its reading process, bounded at START_AND_STOP (1 s); what they take is measured and printed
   (a five-byte text file read the same way; slow.pdf at a 1 s deadline, minus 1 s).
2. Peak memory of the reading process ÷ file size. RUSAGE_CHILDREN cannot see the worker (a child of the forkserver),
   so a probe is started from the product's own forkserver (documents.extract, documents.worker, pypdf and
   python-docx preloaded, as for a real reader); it receives the file over a pipe as the worker does, forks one child
   that sets the worker's limits, calls extract_document with the same arguments and pickles the answer as the worker
   does before sending it, and reads that child's ru_maxrss from os.wait4 (exact, also when the child is killed).
   Baseline: an idle child forked the same way (the interpreter and the preloaded modules). Files that part 1 found
   to run into the deadline are measured over their first `--memory-window` seconds only (stated). Beside each, the
   real worker's VmHWM, polled every 20 ms from /proc/<pid>/status during part 1 (a cross-check; a read shorter than
   the poll shows none).
3. A second person's time to first text while a large index is written ÷ idle. Two TurnEngines, two people, one
   SQLite file (WAL, as config/database.py opens it), against the in-process Azure OpenAI and Entra ID emulators over
   HTTPS (gpt-4o, scripted engine, unpaced: the emulator adds no time to first token, so the ratio is as sensitive
   as it can be; the catalog's text-embedding-3-small deployment embeds). Person A runs in a process of its own (a
   second replica: no shared GIL) and sends a question with a text file of about `--passages` distinct passages
   (indexed with consent given, A_EMBEDDING_BATCH passages per embeddings request to keep A's turn short); person B,
   in this process, sends short questions back to back. B's time from sending to the
   first TextDelta is measured while A's ConversationStore.commit_turn runs (the turn's transaction, then the long
   document's passages in batches of PASSAGE_BATCH) and with A idle, alternating, `--runs` runs of each. The same
   again with memory.documents.INLINE_PASSAGES set to 10**9 in A's replica (everything in the turn's transaction,
   as before the change). The per-minute limits are off (0) in both replicas so B's back-to-back questions are not
   refused; the usage ledger still counts each request and holds its budget in the database before it is sent (the
   time B spends in the ledger is printed too).
4. Database bytes per indexed passage: the same large document indexed through the engine into a fresh SQLite file,
   (file size after − before) ÷ passages, with the vector's share (dimensions × 4 bytes); and a Markdown document
   whose every section repeats the same boilerplate paragraph: passages before de-duplication vs stored.

`python -m bench.hostile_documents [--deadline S] [--memory-window S] [--passages N] [--runs N] [--parts 1234]
[--keep]`
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

from bench.result import result

MB = 1_048_576
PATHS = b"0 0 m 100 100 l S\n"  # drawing without text (the per-file content limit's test files use it)
TARGET_TTFT_RATIO = 1.5
START_AND_STOP = 1.0  # seconds a read may take past its deadline: starting and stopping (killing, reaping) the process
DEPLOYMENT = "gpt-4o"  # a deployment without reasoning: its first text comes with its first token
INLINE_ALL = 10 ** 9  # INLINE_PASSAGES for "everything in the turn's transaction" (as before the change)
A_EMBEDDING_BATCH = 128  # person A's embeddings requests: passages per request (the product's default is 16)
B_QUESTION = "When does the Thursday planning meeting start"
A_QUESTION = "What does the shipment log say about warehouse 12?"


# -- the corpus ------------------------------------------------------------------------------------------------------

def hostile_corpus() -> list[tuple[str, object, str]]:
    """(file name, builder, what it is): every builder of tests/hostile_files.py at its default size, and the
    variants the tests use for the other limits."""
    from tests import hostile_files as hostile

    return [
        ("shared.pdf", hostile.shared_stream_pdf, "500 pages share one 70 MB stream"),
        ("shared-paths.pdf", lambda: hostile.shared_stream_pdf(30, 3, PATHS), "30 pages share 3 MB of paths"),
        ("slow.pdf", hostile.slow_text_pdf, "500 pages share 3.7 MB of text, within every work limit"),
        ("flood.pdf", hostile.operator_flood_pdf, "one page, 1,000,000 text operators"),
        ("flood3.pdf", lambda: hostile.operator_flood_pdf(3_000_000), "one page, 3,000,000 text operators"),
        ("dense.pdf", lambda: hostile.dense_page_pdf(3_000_000, 30, PATHS), "30 pages of 3 MB of paths each"),
        ("forms.pdf", lambda: hostile.form_pdf(500_000, draws=10), "a 500 KB form drawn 10 times"),
        ("named-form.pdf", lambda: hostile.form_pdf(3_000_000, draws=0, pages=40), "40 pages name a 3 MB form"),
        ("bomb.docx", hostile.docx_xml_bomb, "199 MB of XML at 56:1"),
        ("bomb-30mb.docx", lambda: hostile.docx_xml_bomb(30), "30 MB of XML: within the work limits"),
        ("three-parts.docx", lambda: hostile.docx_xml_bomb(30, parts=("word/document.xml", "word/styles.xml",
                                                                      "word/numbering.xml")), "3 × 30 MB of XML"),
        ("big.csv", hostile.huge_csv, "150,000 rows"),
        ("headings.md", hostile.deep_cpu_text, "200,000 one-line sections"),
        ("headings-18mb.md", lambda: hostile.deep_cpu_text(1_800_000), "1,800,000 one-line sections"),
    ]


def default_limits() -> dict:
    """The product's defaults (config/settings.py AppSettings), as DocumentDesk.read passes them."""
    from config.settings import AppSettings

    fields = AppSettings.model_fields
    return dict(max_bytes=fields["max_document_bytes"].default, max_pages=fields["max_document_pages"].default,
                max_rows=fields["document_max_rows"].default, seconds=fields["document_read_seconds"].default,
                memory_mb=fields["document_read_memory_mb"].default, workers=fields["document_workers"].default)


def distinct_text(passages: int) -> bytes:
    """A text file of about `passages` distinct passages of 300 tokens (every line different: repeated passages are
    indexed once)."""
    goods = ["pallets of copper wire", "crates of valves", "drums of coolant", "rolls of steel sheet",
             "boxes of sensors", "cases of filters", "bundles of conduit", "spools of cable"]
    lines = []
    for number in range(passages * 7):
        lines.append(f"Entry {number:06d}: {3 + number % 41} {goods[number % len(goods)]} left warehouse "
                     f"{number % 97} for depot {number * 7919 % 10007} on day {number % 365}, "
                     f"manifest {number * 104729 % 1000003:07d}, checked by inspector {number % 53}.")
    return "\n".join(lines).encode()


BOILERPLATE = ("This page is part of the Contoso Ltd. operations handbook. Printed copies are not controlled; the "
               "current version is the one on the intranet. The handbook is confidential and may not be shared "
               "outside the company without the written consent of the legal department. Questions about this page "
               "go to the owner of the process it describes, named in the register of processes; corrections go to "
               "the handbook editors, who review every page once a year and after every audit finding. Where this "
               "page and a local procedure disagree, the stricter rule applies until the editors decide otherwise. ")


def boilerplate_markdown(sections: int) -> bytes:
    """Markdown whose every procedure is preceded by the same "Notice" section (heading and boilerplate paragraph, one
    passage): 2 × `sections` passages before de-duplication, `sections` + 1 after."""
    body = []
    for number in range(1, sections + 1):
        body.append(f"# Notice\n\n{BOILERPLATE}\n\n# Procedure {number}\n\n" + " ".join(
            f"Step {step} of procedure {number} checks item {number * 31 + step} in area {number % 17}."
            for step in range(1, 16)))
    return "\n\n".join(body).encode()


# -- part 1: extraction time -----------------------------------------------------------------------------------------

def _worker_hwm(stop: threading.Event, peaks: dict) -> None:
    """Polls the VmHWM of every running document reader (the product's worker, a child of the forkserver)."""
    import multiprocessing

    while not stop.is_set():
        for child in multiprocessing.active_children():
            if child.name.startswith("document-reader"):
                try:
                    for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            peaks["kib"] = max(peaks.get("kib", 0), int(line.split()[1]))
                except (OSError, ValueError):
                    pass
        stop.wait(0.02)


def timed_read(name: str, data: bytes, limits: dict) -> tuple[str, float, int]:
    """(outcome, seconds, the worker's polled VmHWM in KiB) of one read_document."""
    from documents.extract import DocumentRejected
    from documents.worker import read_document

    stop, peaks = threading.Event(), {}
    poller = threading.Thread(target=_worker_hwm, args=(stop, peaks), daemon=True)
    poller.start()
    started = time.monotonic()
    try:
        document = read_document(name, data, **limits)
        outcome = f"read: {len(document.sections):,} sections"
    except DocumentRejected as exc:
        outcome = f"refused: {exc.reason}"
    elapsed = time.monotonic() - started
    stop.set()
    poller.join(timeout=5)
    return outcome, elapsed, peaks.get("kib", 0)


def part_extraction(files: list[tuple[str, bytes, str]], limits: dict) -> dict:
    deadline = limits["seconds"]
    started = time.monotonic()
    timed_read("warm-up.txt", b"hello", limits)  # starts the forkserver (it preloads the readers)
    forkserver_start = time.monotonic() - started
    process_start = statistics.median(timed_read("hello.txt", b"hello", limits)[1] for _ in range(5))
    print(f"[1] extraction with the product's limits: deadline {deadline} s, {limits['memory_mb']:,} MB, "
          f"{limits['workers']} workers, {limits['max_bytes'] // MB} MB, {limits['max_pages']} pages, "
          f"{limits['max_rows']:,} rows")
    print(f"    forkserver start (once per replica): {forkserver_start:.2f} s; a reading process's start (median "
          f"time to read a 5-byte text file): {process_start * 1000:.0f} ms")
    from tests.hostile_files import slow_text_pdf

    _, at_deadline, _ = timed_read("slow.pdf", slow_text_pdf(), dict(limits, seconds=1))
    print(f"    start and stop of a reading process that runs into its deadline: {(at_deadline - 1) * 1000:.0f} ms "
          f"(slow.pdf with a 1 s deadline, minus 1 s)")
    rows = {}
    for name, data, what in files:
        outcome, seconds, hwm = timed_read(name, data, limits)
        rows[name] = dict(outcome=outcome, seconds=seconds, hwm_kib=hwm)
        print(f"    {name:<17} {len(data) / MB:6.2f} MB  {seconds:6.2f} s  {outcome}   ({what})")
    worst_name = max(rows, key=lambda n: rows[n]["seconds"])
    worst = rows[worst_name]["seconds"]
    allowed = (deadline + START_AND_STOP) / deadline
    print(f"    worst: {worst_name} {worst:.2f} s = {worst / deadline:.3f} × the deadline "
          f"({(worst - deadline) * 1000:+.0f} ms); target ≤ {allowed:.3f}: the deadline plus at most "
          f"{START_AND_STOP:g} s to start and stop the process")
    result(f"hostile documents: worst read time ÷ deadline ({len(files)} hostile files, deadline {deadline} s)",
           worst / deadline, f"≤ {allowed:.3f} (deadline + {START_AND_STOP:g} s start/stop)",
           worst / deadline <= allowed)
    return rows


# -- part 2: peak memory ---------------------------------------------------------------------------------------------

_EXIT = {0: "read", 3: "refused", 4: "out of memory", 5: "failed"}


def _memory_probe(connection, name: str | None, limits: dict, window: float) -> None:
    """In a child of the product's forkserver: the file from the pipe, then one forked child that does what
    documents.worker._child does (limits, extract_document, the answer pickled) but send it; sends back that child's
    ru_maxrss (KiB, from wait4), how it ended and its wall time."""
    from multiprocessing.reduction import ForkingPickler

    from documents import worker
    from documents.extract import DocumentRejected, extract_document

    data = connection.recv_bytes()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the measured child
        code = 5
        try:
            worker._limit(limits["seconds"], limits["memory_mb"])
            if name is not None:
                document = extract_document(name, data, max_bytes=limits["max_bytes"], max_pages=limits["max_pages"],
                                            max_rows=limits["max_rows"], progress=lambda page, pages: None)
                # The worker then pickles its answer onto the pipe: for many sections, no small part of its memory.
                ForkingPickler.dumps(("done", (document.kind, document.extension, document.sha256, document.sections,
                                               document.pages)))
            code = 0
        except DocumentRejected:
            code = 3
        except MemoryError:
            code = 4
        except BaseException:  # noqa: BLE001 - counted as failed
            code = 5
        os._exit(code)
    stopped = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > window:
            os.kill(pid, signal.SIGKILL)
            done, status, usage = os.wait4(pid, 0)
            stopped = True
            break
        time.sleep(0.005)
    seconds = time.monotonic() - started
    if stopped:
        ended = f"stopped after {window:g} s"
    elif os.WIFSIGNALED(status):
        ended = f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        ended = _EXIT.get(os.WEXITSTATUS(status), "failed")
    connection.send((usage.ru_maxrss, ended, seconds))
    connection.close()


def probe_peak(name: str | None, data: bytes, limits: dict, window: float) -> tuple[int, str, float]:
    """(peak KiB, how it ended, seconds) of extract_document in a child forked from a forkserver child."""
    from bench import hostile_documents as this  # by its importable name: the forkserver's child imports it
    from documents import worker

    context = worker._context()  # the product's forkserver (started with its preloads if it is not running yet)
    connection, child_end = context.Pipe(duplex=True)
    process = context.Process(target=this._memory_probe, args=(child_end, name, limits, window),
                              name="bench-memory-probe", daemon=True)
    process.start()
    child_end.close()
    try:
        connection.send_bytes(data)
        if not connection.poll(window + 30):  # the probe stops its child at `window`
            raise RuntimeError(f"the memory probe for {name} did not answer")
        return connection.recv()
    finally:
        if process.exitcode is None:
            process.join(timeout=10)
        if process.exitcode is None:
            process.kill()
            process.join(timeout=5)
        connection.close()


def part_memory(files: list[tuple[str, bytes, str]], ordinary: list[tuple[str, bytes, str]], limits: dict,
                window: float, timings: dict) -> None:
    idle_kib, _, _ = probe_peak(None, b"", limits, 10)
    idle = idle_kib / 1024
    print(f"[2] peak memory of the reading process (ru_maxrss from wait4 of a child forked from a forkserver child, "
          f"same limits and call); idle child (interpreter + preloaded readers): {idle:.1f} MB")
    print(f"    {'file':<17} {'file MB':>8} {'peak MB':>8} {'net MB':>8} {'peak÷file':>10} {'net÷file':>9}  "
          f"ended / worker VmHWM polled in part 1")
    hostile = {name for name, _, _ in files}
    amplifier, largest = ("", 0.0), ("", 0.0)
    for name, data, _ in [*files, *ordinary]:
        outcome = timings.get(name, {}).get("outcome", "")
        deadline_bound = f"within {limits['seconds']} s" in outcome or "s of processing" in outcome
        measured_for = min(window, limits["seconds"]) if deadline_bound else limits["seconds"]
        peak_kib, ended, seconds = probe_peak(name, data, limits, measured_for)
        peak, size = peak_kib / 1024, len(data) / MB
        net = max(peak - idle, 0.0)
        hwm = timings.get(name, {}).get("hwm_kib", 0) / 1024
        note = f"{ended} ({seconds:.1f} s)" + (f"; VmHWM {hwm:.0f} MB" if hwm else "")
        if deadline_bound and measured_for < limits["seconds"]:
            note += f"  [its first {measured_for:g} s only; part 1 ran it to the {limits['seconds']} s deadline]"
        print(f"    {name:<17} {size:8.3f} {peak:8.1f} {net:8.1f} {peak / size:10.1f} {net / size:9.1f}  {note}")
        if name in hostile:
            if len(data) >= 100_000 and net / size > amplifier[1]:
                amplifier = (name, net / size)
            if peak > largest[1]:
                largest = (name, peak)
    limit = limits["memory_mb"]
    print(f"    most memory per byte among hostile files of 100 KB or more, net of the idle child: {amplifier[0]}, "
          f"{amplifier[1]:.0f} × its size; largest peak: {largest[0]}, {largest[1]:.0f} MB = "
          f"{largest[1] / limit:.2f} × the {limit:,} MB limit (which bounds address space, not resident memory)")
    result("hostile documents: worker peak memory net of idle ÷ file size, worst hostile file ≥ 100 KB",
           amplifier[1], "stated", None)
    result("hostile documents: largest worker peak of a hostile file ÷ memory limit", largest[1] / limit, "stated",
           None)
    result("hostile documents: idle reading process peak (MB)", idle, "stated", None)


# -- parts 3 and 4: two replicas on one SQLite file ------------------------------------------------------------------

def bench_settings():
    """The app's settings from the environment (the emulators'), with the per-minute limits off."""
    from config import load_settings

    settings = load_settings(env_file=None)
    app = settings.app.model_copy(update={"rate_limit_requests_per_minute": 0, "rate_limit_tokens_per_minute": 0})
    return settings.model_copy(update={"app": app})


def asker(settings, person, provider):
    from auth.security_context import SecurityContext
    from engine import Asker
    from localdev.stack import TENANT_ID
    from memory.store import Owner

    return Asker(Owner(person.oid, TENANT_ID), SecurityContext(settings.app.name, person.oid, TENANT_ID, "127.0.0.1"),
                 f"bench-{person.oid[:8]}", token_provider=lambda: provider, roles=frozenset(person.roles))


def turn_engine(settings, data_dir: Path, name: str):
    """A TurnEngine as ui/services.py builds one (store, usage ledger) on data_dir/conversations.db, audit muted."""
    from callbacks.audit import AuditLog
    from config.database import database_engine
    from engine import TurnEngine
    from memory.store import ConversationStore
    from store.files import FileStore
    from store.usage import UsageLedger

    quiet = logging.getLogger(f"bench.hostile_documents.{name}")
    quiet.propagate, quiet.disabled = False, True
    database = database_engine(None, data_dir, "conversations.db")
    store = ConversationStore(database, FileStore(data_dir / "images"))
    return TurnEngine(settings, store, AuditLog(quiet), usage=UsageLedger(database)), database


def file_bytes(database, path: Path) -> int:
    """The SQLite file's size with the write-ahead log folded in."""
    with database.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(str(path) + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _replica_a(connection) -> None:
    """Person A's replica, a process of its own: on ("turn", data_dir, file name, bytes, INLINE_PASSAGES), one turn
    with that file (indexing approved), reporting ("writing", t) and ("written", t) around commit_turn
    (time.monotonic(), the same clock in every process) and then ("done", figures)."""
    from sqlalchemy import text

    import memory.documents as stored_documents
    from auth.credentials import app_token_provider
    from chains.registry import get_chain
    from engine import Choices, DocumentIndexed, NewMessage, Outcome, TextDelta, Upload
    from localdev.stack import TEST_USER
    from memory.conversation import Conversation

    settings = bench_settings()
    # Fewer, larger embeddings requests (the emulator takes ~65 ms per request whatever its size): A's turn takes
    # about 6 s instead of 18; what is stored, and how, is the same.
    settings = settings.model_copy(update={"app": settings.app.model_copy(update={
        "embedding_batch_size": A_EMBEDDING_BATCH})})
    who = asker(settings, TEST_USER, app_token_provider(settings.entra))
    deployment = settings.catalog.get(DEPLOYMENT)
    choices = Choices(deployment, get_chain("assistant"), settings.app.default_max_output_tokens,
                      settings.app.default_temperature)
    connection.send(("ready", settings.catalog.embedding.dimensions))
    while connection.poll(900):
        try:
            command = connection.recv()
        except EOFError:  # the benchmark is gone
            break
        if command[0] != "turn":
            break
        _, data_dir, name, data, inline = command
        stored_documents.INLINE_PASSAGES = inline
        data_dir = Path(data_dir)
        engine, database = turn_engine(settings, data_dir, "a")
        before = file_bytes(database, data_dir / "conversations.db")
        commit = engine.store.commit_turn

        def reported(*args, **kwargs):
            connection.send(("writing", time.monotonic()))
            try:
                return commit(*args, **kwargs)
            finally:
                connection.send(("written", time.monotonic()))

        engine.store.commit_turn = reported
        ref = f"stored:{hashlib.sha256(data).hexdigest()}.{name.rsplit('.', 1)[-1]}"
        marks, document, last = {"sent": time.monotonic()}, None, None
        for event in engine.run(who, Conversation(), NewMessage(A_QUESTION, [Upload(name, data)], frozenset({ref})),
                                choices):
            if isinstance(event, DocumentIndexed):
                document, marks["indexed"] = event.document, time.monotonic()
            elif isinstance(event, TextDelta) and "text" not in marks:
                marks["text"] = time.monotonic()
            last = event
        outcome = last
        marks["done"] = time.monotonic()
        stored, text_bytes, vector_bytes = 0, 0.0, 0.0
        if document is not None:
            with database.connect() as db:
                stored, text_bytes, vector_bytes = db.execute(text(
                    "select count(*), avg(length(cast(text as blob))), avg(length(vector)) from document_passages "
                    "where document_id = :d"), {"d": document.id}).one()
        after = file_bytes(database, data_dir / "conversations.db")
        database.dispose()
        connection.send(("done", dict(
            ok=isinstance(outcome, Outcome) and outcome.saved and outcome.failure is None and document is not None,
            passages=document.passage_count if document else 0, stored=stored, before=before, after=after,
            text_bytes=text_bytes, vector_bytes=vector_bytes,
            marks=marks, ended=_ended(outcome))))
    connection.close()


def _ended(event) -> str:
    """How a turn ended, for an error message (never the answer's text)."""
    from engine import Blocked, Outcome

    if isinstance(event, Blocked):
        return f"blocked: {event.reason}: {event.message}"
    if isinstance(event, Outcome):
        return (f"{event.answer.status}, saved {event.saved}, failure {event.failure and event.failure.kind}, "
                f"notice {event.user.notice!r}")
    return type(event).__name__


class ReplicaA:
    """The parent's handle on person A's replica; every wait bounded."""

    def __init__(self) -> None:
        import multiprocessing

        from bench import hostile_documents as this

        context = multiprocessing.get_context("spawn")  # this process runs the emulators' threads: no fork
        self.connection, child_end = context.Pipe(duplex=True)
        # Not a daemon: a daemonic process may not start children, and A's replica reads its file in one. It ends
        # when this process closes the pipe (or dies: EOF), and close() kills it if it does not.
        self.process = context.Process(target=this._replica_a, args=(child_end,), name="bench-replica-a")
        self.process.start()
        child_end.close()
        self.dimensions = self.receive("ready", 180)[1]

    def receive(self, kind: str, seconds: float):
        if not self.connection.poll(seconds):
            raise RuntimeError(f"person A's replica sent no {kind!r} within {seconds:g} s")
        message = self.connection.recv()
        if message[0] != kind:
            raise RuntimeError(f"person A's replica sent {message!r}, expected {kind!r}")
        return message

    def finish(self, seconds: float) -> dict:
        """Person A's figures once the turn is done (its writing news passed over)."""
        limit = time.monotonic() + seconds
        while True:
            if not self.connection.poll(max(0.0, limit - time.monotonic())):
                raise RuntimeError(f"person A's turn did not end within {seconds:g} s")
            message = self.connection.recv()
            if message[0] == "done":
                return message[1]

    def turn(self, data_dir: Path, name: str, data: bytes, inline: int) -> None:
        self.connection.send(("turn", str(data_dir), name, data, inline))

    def close(self) -> None:
        try:
            self.connection.send(("stop",))
        except OSError:
            pass
        self.process.join(timeout=20)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(timeout=5)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def index_fresh(replica: ReplicaA, work: Path, big: bytes, passage_tokens: int, model: str) -> dict:
    """Part 4's measurements (run first: they are person A's warm-up too): each document indexed through A's engine
    into a fresh SQLite file."""
    from documents.extract import extract_document
    from documents.passages import split_sections

    figures = {}
    for label, name, data in (("distinct", "shipments.txt", big),
                              ("boilerplate", "handbook.md", boilerplate_markdown(400))):
        before_dedup = len(split_sections(extract_document(name, data).sections, model, passage_tokens))
        replica.turn(work / f"fresh-{label}", name, data, 200)
        done = replica.finish(600)
        if not done["ok"] or done["stored"] != done["passages"]:
            raise RuntimeError(f"person A's turn did not store its index: {done}")
        figures[label] = dict(done, before_dedup=before_dedup, size=len(data))
    return figures


def part_database(figures: dict, dimensions: int) -> None:
    vector_bytes = dimensions * 4
    distinct, boiler = figures["distinct"], figures["boilerplate"]
    per = (distinct["after"] - distinct["before"]) / distinct["stored"]
    boiler_per = (boiler["after"] - boiler["before"]) / boiler["stored"]
    rest = per - distinct["vector_bytes"] - distinct["text_bytes"]
    print("[4] database bytes per indexed passage (each document through the engine into a fresh SQLite file; "
          "WAL checkpointed; the turn's own few rows included)")
    print(f"    distinct text file ({distinct['size'] / MB:.2f} MB, {distinct['stored']:,} passages stored of "
          f"{distinct['before_dedup']:,}): file {distinct['before'] / MB:.2f} MB → {distinct['after'] / MB:.2f} MB, "
          f"{per:,.0f} bytes per passage = vector {dimensions} × 4 = {vector_bytes:,} "
          f"({vector_bytes / per:.0%})"
          f" + text {distinct['text_bytes']:,.0f} (300 tokens, 15% overlap) + {rest:,.0f} for the row, label, "
          f"indexes and free space")
    print(f"    Markdown with the same boilerplate section before each of 400 procedures: "
          f"{boiler['before_dedup']:,} passages before de-duplication, {boiler['stored']:,} stored "
          f"({boiler['stored'] / boiler['before_dedup']:.0%}); {boiler_per:,.0f} bytes per stored passage")
    result("hostile documents: database bytes per indexed passage (text-embedding-3-small, 512 dimensions)", per,
           "stated", None)
    result("hostile documents: vector's share of a stored passage's bytes", vector_bytes / per, "stated", None)
    result("hostile documents: passages stored ÷ before de-duplication, boilerplate on every section",
           boiler["stored"] / boiler["before_dedup"], "stated", None)


def part_contention(replica: ReplicaA, work: Path, big: bytes, runs: int, idle_questions: int, settings) -> None:
    from auth.credentials import app_token_provider
    from chains.registry import get_chain
    from engine import Choices, NewMessage, Outcome, TextDelta
    from localdev.stack import OTHER_USER
    from memory.conversation import Conversation

    shared = work / "shared"
    engine, database = turn_engine(settings, shared, "b")
    who = asker(settings, OTHER_USER, app_token_provider(settings.entra))
    choices = Choices(settings.catalog.get(DEPLOYMENT), get_chain("assistant"), 200, settings.app.default_temperature)
    asked, in_ledger = [0], [0.0]
    # The time B's turn spends in the usage ledger before sending (per-minute count, budget hold, budget reads): the
    # database work on B's way to its first token.
    for method in ("count_request", "reserve", "state", "override"):
        def timed(*args, _inner=getattr(engine.usage, method), **kwargs):
            started = time.monotonic()
            try:
                return _inner(*args, **kwargs)
            finally:
                in_ledger[0] += time.monotonic() - started
        setattr(engine.usage, method, timed)

    def question() -> tuple[float, float, float]:
        """(sent, seconds to the first TextDelta, of which in the ledger) of one of B's questions, in a new
        conversation."""
        asked[0] += 1
        in_ledger[0] = 0.0
        sent, first, ledger, outcome = time.monotonic(), None, 0.0, None
        for event in engine.run(who, Conversation(), NewMessage(f"{B_QUESTION} (question {asked[0]})?"), choices):
            if first is None and isinstance(event, TextDelta):
                first, ledger = time.monotonic(), in_ledger[0]
            outcome = event
        if first is None or not isinstance(outcome, Outcome):
            raise RuntimeError(f"person B's question got no answer: {_ended(outcome)}")
        return sent, first - sent, ledger

    for _ in range(3):
        question()  # warm-up: connections, tokens, the emulator
    variants = {"batches": 200, "one transaction": INLINE_ALL}
    idle: list[tuple[float, float, float]] = []
    during = {variant: [] for variant in variants}
    windows = {variant: [] for variant in variants}
    turns = {variant: [] for variant in variants}
    passages = []
    for run in range(runs):
        for variant in list(variants)[::1 if run % 2 == 0 else -1]:
            idle += [question() for _ in range(idle_questions)]
            replica.turn(shared, "shipments.txt", big, variants[variant])
            start = replica.receive("writing", 600)[1]
            samples, end = [], None
            limit = time.monotonic() + 300
            while end is None and time.monotonic() < limit:
                samples.append(question())
                while end is None and replica.connection.poll(0):
                    message = replica.connection.recv()
                    if message[0] != "written":
                        raise RuntimeError(f"person A's replica sent {message!r}")
                    end = message[1]
            if end is None:
                end = replica.receive("written", 300)[1]
            done = replica.receive("done", 120)[1]
            if not done["ok"] or done["stored"] != done["passages"]:
                raise RuntimeError(f"person A's turn did not store its index: {done}")
            passages.append(done["passages"])
            during[variant] += [sample for sample in samples if start <= sample[0] <= end]
            windows[variant].append(end - start)
            turns[variant].append(done["marks"]["done"] - done["marks"]["sent"])
    database.dispose()

    def ms(values) -> str:
        return f"median {statistics.median(values) * 1000:.1f} ms, p95 {percentile(values, 0.95) * 1000:.1f} ms"

    idle_median = statistics.median(s[1] for s in idle)
    print(f"[3] person B's time to first text while person A's replica (its own process) writes a "
          f"{max(passages):,}-passage index to the same SQLite file, ÷ with A idle; emulators over HTTPS, scripted "
          f"engine unpaced; {runs} runs of each variant, alternating, each after {idle_questions} idle questions")
    print(f"    A idle: {len(idle)} questions: {ms([s[1] for s in idle])}; of which in the usage ledger's database "
          f"work: {ms([s[2] for s in idle])}")
    for variant in variants:
        values = during[variant]
        how = ("passages in batches of 200 after the turn's transaction (the product)" if variant == "batches"
               else "every passage in the turn's transaction (INLINE_PASSAGES = 10**9, as before the change)")
        print(f"    {how}: A's commit_turn took {statistics.median(windows[variant]):.2f} s (median; A's whole turn "
              f"{statistics.median(turns[variant]):.1f} s)")
        if not values:
            print("      no question of B's was sent during A's writes")
            continue
        median, p95 = statistics.median(v[1] for v in values), percentile([v[1] for v in values], 0.95)
        print(f"      B sent {len(values)} questions meanwhile: {ms([v[1] for v in values])}; of which in the ledger: "
              f"{ms([v[2] for v in values])}; median ÷ idle median {median / idle_median:.2f}, p95 ÷ idle median "
              f"{p95 / idle_median:.2f}; median − idle median {(median - idle_median) * 1000:+.1f} ms")
        if variant == "batches":
            result("hostile documents: another person's time to first text during a large index write ÷ idle "
                   "(median)", median / idle_median, f"≤ {TARGET_TTFT_RATIO}",
                   median / idle_median <= TARGET_TTFT_RATIO)
            result("hostile documents: the same, p95 ÷ idle median", p95 / idle_median, "stated", None)
        else:
            result("hostile documents: the same with the whole index in the turn's transaction (before the change)",
                   median / idle_median, "stated", None)


# -- main ------------------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=int, default=None, help="seconds a file may take to read (default: the "
                        "product's, 30)")
    parser.add_argument("--memory-window", type=float, default=8.0, help="seconds over which the memory of a file "
                        "that runs into the deadline is measured")
    parser.add_argument("--passages", type=int, default=3000, help="distinct passages of person A's document")
    parser.add_argument("--runs", type=int, default=5, help="runs of each variant in part 3")
    parser.add_argument("--idle-questions", type=int, default=6, help="B's questions per idle run")
    parser.add_argument("--parts", default="1234")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite files and emulator data")
    args = parser.parse_args()
    started = time.monotonic()

    limits = default_limits()
    if args.deadline:
        limits["seconds"] = args.deadline
    if "1" in args.parts or "2" in args.parts:
        from tests.document_corpus import facts_pdf, headed_docx, sample_csv

        files = [(name, build(), what) for name, build, what in hostile_corpus()]
        ordinary = [("facts-40.pdf", facts_pdf(40)[0], "ordinary: 40-page PDF"),
                    ("review.docx", headed_docx()[0], "ordinary: Word file"),
                    ("sales.csv", sample_csv(), "ordinary: 120-row CSV")]
        timings = part_extraction(files, limits) if "1" in args.parts else {}
        if "2" in args.parts:
            part_memory(files, ordinary, limits, args.memory_window, timings)

    if "3" in args.parts or "4" in args.parts:
        from localdev.engines import ScriptedEngine
        from localdev.stack import StackConfig, app_environment, start_emulators

        work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
        config = StackConfig(entra_port=0, aoai_port=0, graph_port=0, data_dir=work / "data", engine="scripted")
        emulators = start_emulators(config)
        replica = None
        try:
            emulators.aoai.engine = ScriptedEngine()  # unpaced
            for name in list(os.environ):
                if name.startswith(("APP_", "ENTRA_", "AZURE_OPENAI_", "GRAPH_")):
                    del os.environ[name]
            os.environ.update(app_environment(config, emulators))
            settings = bench_settings()
            big = distinct_text(args.passages)
            replica = ReplicaA()
            fresh = index_fresh(replica, work, big, settings.app.passage_tokens,
                                settings.catalog.get(DEPLOYMENT).model)  # person A's warm-up too
            if "3" in args.parts:
                part_contention(replica, work, big, args.runs, args.idle_questions, settings)
            if "4" in args.parts:
                part_database(fresh, replica.dimensions)
        finally:
            if replica is not None:
                replica.close()
            emulators.stop()
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    print(f"(whole benchmark: {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
