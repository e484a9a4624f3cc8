"""Reading an attached file in a child process, never in the web server's: a hostile file that stays within every size
limit can still cost an hour of CPU or gigabytes of memory, and only a process can be stopped from outside.

- One child process per file, started by the "forkserver" method (a small server process forked once, with
  documents.extract, pypdf and python-docx already imported, so a child starts in milliseconds; "spawn" where there is
  no forkserver). At most `workers` children run at once on this replica; the others wait their turn, reporting that
  they wait, and can be closed while they wait.
- In the child: RLIMIT_CPU (the deadline plus a second: the kernel stops a child its parent no longer watches) and
  RLIMIT_AS (the memory limit), no core dumps; `extract_document` reports each page over the pipe.
- In the parent: a wall-clock deadline of `seconds`; the child is killed and reaped when it passes, when the reading
  ends in any way, and when the caller closes the generator (Stop, the page closed) — a `finally:`.
- The file's bytes go to the child through the pipe; only the sections come back (the parent already has the bytes).
- Every outcome is an ExtractedDocument or a DocumentRejected whose reason is a sentence for a person: never a
  library's message, never the file's content.

Works from any thread (Streamlit runs each session's script in one) and with SIGINT ignored (background jobs): nothing
here touches signal handlers in the parent. Nothing here imports Streamlit.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.spawn
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass

from documents.extract import DocumentRejected, ExtractedDocument, extract_document

try:
    import resource
except ImportError:  # Windows: no rlimits; the wall-clock deadline still applies
    resource = None

_CHILD_NAME = "document-reader"  # every child's process name starts with this
_JOIN_SECONDS = 5.0  # how long a killed child may take to be reaped
_GENERIC = "it could not be read (the file may be damaged, or built to be hard to read)"


@dataclass(frozen=True)
class ReadProgress:
    """News of one file's reading: page `page` of `pages` is being read (0 of 0 before the first page), or, when
    `waiting`, it waits for a free worker (all `workers` busy with other files)."""

    name: str
    page: int
    pages: int
    waiting: bool = False


def read_in_worker(name: str, data: bytes, *, max_bytes: int, max_pages: int, max_rows: int, seconds: int,
                   memory_mb: int, workers: int, poll: float = 0.1) -> Generator[ReadProgress, None,
                                                                                  ExtractedDocument]:
    """`extract_document` in a child process, within `seconds` of wall-clock time and `memory_mb` of memory.

    Yields a ReadProgress at once, then about every `poll` seconds (repeating the last one when there is no news, so
    that a caller can stop between two); returns the ExtractedDocument (with the caller's `data`); raises
    DocumentRejected when the file is refused, too slow or too big to read. Closing the generator kills the child."""
    data = bytes(data)
    slots = _slots(workers)
    held = slots.acquire(blocking=False)
    process = connection = None
    try:
        while not held:
            yield ReadProgress(name, 0, 0, waiting=True)
            held = slots.acquire(timeout=poll)
        yield ReadProgress(name, 0, 0)
        context = _context()
        connection, child_end = context.Pipe(duplex=True)
        try:
            child = context.Process(target=_child, name=f"{_CHILD_NAME} ({len(data):,} bytes)", daemon=True,
                                    args=(child_end, name, max_bytes, max_pages, max_rows, seconds, memory_mb))
            child.start()
            process = child
        except Exception:  # no process (out of processes or memory, the forkserver gone): nothing read, try again
            raise DocumentRejected(name, "it could not be read just now (no reading process could be started); "
                                         "try again in a moment") from None
        finally:
            child_end.close()  # the child holds its own copy: the parent's end reports EOF when the child is gone
        deadline = time.monotonic() + seconds
        try:
            connection.send_bytes(data)
        except OSError:  # the child is already gone (BrokenPipeError): its exit status says why
            pass
        latest = ReadProgress(name, 0, 0)
        next_yield = time.monotonic() + poll
        while True:
            # An answer already here is taken even past the deadline (the caller may have been slow to ask).
            if connection.poll(max(0.0, min(next_yield, deadline) - time.monotonic())):
                try:
                    message = connection.recv()
                except (EOFError, OSError):  # the child ended without an answer
                    raise DocumentRejected(name, _death_reason(process, seconds, memory_mb)) from None
                if message[0] == "progress":
                    latest = ReadProgress(name, message[1], message[2])
                elif message[0] == "done":
                    kind, extension, sha256, sections, pages = message[1]
                    return ExtractedDocument(name=name, kind=kind, extension=extension, sha256=sha256, data=data,
                                             sections=sections, pages=pages)
                elif message[0] == "rejected":
                    raise DocumentRejected(name, message[2])
                else:
                    raise DocumentRejected(name, _GENERIC)
            now = time.monotonic()
            if now >= deadline:
                raise DocumentRejected(name, f"it could not be read within {seconds} s (too much work for a file of "
                                             "its size), so it was left out")
            if now >= next_yield:
                yield latest
                next_yield = time.monotonic() + poll
    finally:
        # Runs on every exit: the answer, a refusal, the deadline, and GeneratorExit when the caller closes this.
        if process is not None:
            _stop(process)
        if connection is not None:
            connection.close()
        if held:
            slots.release()


def read_document(name: str, data: bytes, *, max_bytes: int, max_pages: int, max_rows: int, seconds: int,
                  memory_mb: int, workers: int, poll: float = 0.1) -> ExtractedDocument:
    """`read_in_worker` for a caller with no use for progress: the ExtractedDocument, or DocumentRejected."""
    work = read_in_worker(name, data, max_bytes=max_bytes, max_pages=max_pages, max_rows=max_rows, seconds=seconds,
                          memory_mb=memory_mb, workers=workers, poll=poll)
    try:
        while True:
            next(work)
    except StopIteration as done:
        return done.value
    finally:
        work.close()


# --- the parent's side ----------------------------------------------------------------------------------------------

_slots_lock = threading.Lock()
_slots_by_size: dict[int, threading.BoundedSemaphore] = {}


def _slots(workers: int) -> threading.BoundedSemaphore:
    """The replica's pool of reading slots (one per `workers` value: the app always passes its one setting)."""
    with _slots_lock:
        if workers not in _slots_by_size:
            _slots_by_size[workers] = threading.BoundedSemaphore(max(1, workers))
        return _slots_by_size[workers]


_context_lock = threading.Lock()
_context_cache: list = []


def _context():
    """The forkserver context (its server preloads the readers once), or spawn where there is no forkserver."""
    with _context_lock:
        if not _context_cache:
            if "forkserver" in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context("forkserver")
                # Only takes effect if the forkserver is not running yet; it serves this process's children only.
                context.set_forkserver_preload(["documents.extract", "documents.worker", "pypdf", "docx"])
            else:
                context = multiprocessing.get_context("spawn")
            _context_cache.append(context)
        return _context_cache[0]


def _stop(process) -> None:
    """Kill (if still running) and reap the child; every wait bounded."""
    try:
        if process.exitcode is None:
            process.kill()
        process.join(timeout=_JOIN_SECONDS)
        if process.exitcode is not None:
            process.close()
    except (OSError, ValueError):  # already gone, or never started
        pass


def _death_reason(process, seconds: int, memory_mb: int) -> str:
    """Why a child ended without an answer, from its exit status."""
    process.join(timeout=_JOIN_SECONDS)
    code = process.exitcode
    if resource is not None and code is not None and code < 0:
        import signal

        if -code == signal.SIGXCPU:
            return (f"it needed more than {seconds} s of processing to read (too much work for a file of its size), "
                    "so it was left out")
        if -code == signal.SIGKILL:  # not us: the system, which kills a process it has no memory for
            return (f"reading it was stopped by the system, most likely for using too much memory (the limit is "
                    f"{memory_mb:,} MB), so it was left out")
    return _GENERIC


# Under Streamlit, sys.modules["__main__"] is the app's script (app.py) while a session runs: multiprocessing would
# run that script again in every child to recreate __main__ (its spawn preparation does so for a __main__ known only
# by its path). A reader needs nothing from __main__, so for our children (by name) that step is left out. Other
# processes are started as before.
_preparation_data = multiprocessing.spawn.get_preparation_data


def _without_main(name):
    data = _preparation_data(name)
    if str(name).startswith(_CHILD_NAME):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


if getattr(multiprocessing.spawn.get_preparation_data, "__name__", "") != "_without_main":
    multiprocessing.spawn.get_preparation_data = _without_main


# --- the child's side -----------------------------------------------------------------------------------------------

def _child(connection, name: str, max_bytes: int, max_pages: int, max_rows: int, seconds: int,
           memory_mb: int) -> None:
    """Runs in the child: limits first, then the file from the pipe, then one answer: ("done", (kind, extension,
    sha256, sections, pages)) or ("rejected", name, reason); ("progress", page, pages) before each PDF page."""
    _limit(seconds, memory_mb)
    answer = None
    try:
        data = connection.recv_bytes()
        document = extract_document(name, data, max_bytes=max_bytes, max_pages=max_pages, max_rows=max_rows,
                                    progress=lambda page, pages: connection.send(("progress", page, pages)))
        answer = ("done", (document.kind, document.extension, document.sha256, document.sections, document.pages))
        del data, document
        connection.send(answer)
        return
    except DocumentRejected as exc:
        answer = ("rejected", name, exc.reason)
    except MemoryError:
        answer = None  # sent below, once the traceback (and the half-built tree it holds) is gone
    except BaseException:  # anything else (pypdf, lxml, a broken pipe): never its message
        answer = ("rejected", name, _GENERIC)
    if answer is None:
        answer = ("rejected", name, f"reading it needed more than {memory_mb:,} MB of memory (the limit for one "
                                    "file), so it was left out")
    try:
        connection.send(answer)
    except (OSError, MemoryError):  # the parent is gone, or not even this fits: the exit status speaks
        pass
    finally:
        connection.close()


def _limit(seconds: int, memory_mb: int) -> None:
    if resource is None:
        return
    for limit, (soft, hard) in ((resource.RLIMIT_CPU, (seconds + 1, seconds + 2)),
                                (resource.RLIMIT_AS, (memory_mb * 1_048_576, memory_mb * 1_048_576)),
                                (resource.RLIMIT_CORE, (0, 0))):
        _, current = resource.getrlimit(limit)
        if current != resource.RLIM_INFINITY:  # never above what the parent was allowed (that raises ValueError)
            soft, hard = min(soft, current), min(hard, current)
        try:
            resource.setrlimit(limit, (soft, hard))
        except (ValueError, OSError):
            pass
