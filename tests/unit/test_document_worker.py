"""Reading files in a worker process (documents/worker.py), with real child processes: good files read as they do in
process, with progress; hostile files within every size limit are refused by a work limit, the deadline or the memory
limit, within the deadline and a few seconds; the child is gone afterwards, also when the caller closes the generator
(Stop); and a full pool makes the next file wait, saying so."""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest

from documents import worker
from documents.extract import DocumentRejected, ExtractedDocument, extract_document
from documents.worker import ReadProgress, read_document, read_in_worker
from tests import document_corpus as corpus
from tests import hostile_files as hostile

LIMITS = dict(max_bytes=20 * 1_048_576, max_pages=500, max_rows=100_000)
SECONDS, MEMORY_MB = 3, 512


def readers() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.name.startswith("document-reader")]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def stopped(monkeypatch) -> list[int]:
    """The pids of the children the worker stopped and reaped (recorded as each is stopped)."""
    pids, stop = [], worker._stop

    def recording(process):
        pids.append(process.pid)
        stop(process)

    monkeypatch.setattr(worker, "_stop", recording)
    return pids


def drain(work) -> tuple[list[ReadProgress], ExtractedDocument]:
    events = []
    try:
        while True:
            events.append(next(work))
    except StopIteration as done:
        return events, done.value
    finally:
        work.close()


def refused(name: str, data: bytes, **options) -> tuple[str, float]:
    settings = dict(LIMITS, seconds=SECONDS, memory_mb=MEMORY_MB, workers=2) | options
    started = time.monotonic()
    with pytest.raises(DocumentRejected) as caught:
        read_document(name, data, **settings)
    assert caught.value.name == name and "Traceback" not in caught.value.reason
    return caught.value.reason, time.monotonic() - started


# --- good files -----------------------------------------------------------------------------------------------------

def test_a_pdf_reads_with_progress_and_the_same_sections_as_in_process(stopped):
    data, _ = corpus.facts_pdf(6)
    events, document = drain(read_in_worker("facts.pdf", data, seconds=30, memory_mb=MEMORY_MB, workers=2, poll=0.0,
                                            **LIMITS))
    assert events[0] == ReadProgress("facts.pdf", 0, 0, waiting=False)
    assert not any(event.waiting for event in events)
    assert {(e.page, e.pages) for e in events if e.page} == {(page, 6) for page in range(1, 7)}
    assert [e.page for e in events] == sorted(e.page for e in events)  # in page order
    expected = extract_document("facts.pdf", data)
    assert document == expected and document.data is data  # the parent's own bytes: never sent back
    assert (document.kind, document.extension, document.pages, document.sha256) == ("pdf", "pdf", 6, expected.sha256)
    assert len(stopped) == 1 and gone(stopped[0]) and not readers()


@pytest.mark.parametrize("name, data", [
    ("notes.txt", b"First line.\n\nSecond paragraph."),
    ("review.docx", corpus.headed_docx()[0]),
    ("sales.csv", corpus.sample_csv()),
    ("page.html", b"<h1>Title</h1><p>Body text</p>"),
])
def test_other_kinds_read_as_in_process(name, data, stopped):
    events, document = drain(read_in_worker(name, data, seconds=30, memory_mb=MEMORY_MB, workers=2, **LIMITS))
    assert events and events[0].page == 0
    assert document == extract_document(name, data)
    assert gone(stopped[0])


def test_a_refusal_from_extract_comes_back_as_is(stopped):
    reason, _ = refused("salaries.pdf", corpus.encrypted_pdf())
    assert reason == "the PDF is password-protected; remove the password and attach it again"
    reason, _ = refused("long.pdf", corpus.too_many_pages_pdf(12), max_pages=10)
    assert reason == "the PDF has 12 pages; the limit is 10"
    assert all(gone(pid) for pid in stopped)


def test_read_document_works_from_a_thread():
    """Streamlit runs each session's script in a thread of its own."""
    results = []
    thread = threading.Thread(target=lambda: results.append(read_document(
        "notes.md", b"# One\nfirst\n", seconds=30, memory_mb=MEMORY_MB, workers=2, **LIMITS)))
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert results and results[0].sections[0].label == "section “One”"


# --- hostile files within the size limits ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, build, reason", [
    ("shared.pdf", hostile.shared_stream_pdf,
     "page 1 of the PDF unpacks to more than 4 MB of drawing instructions; the limit is 4 MB per page"),
    ("flood.pdf", hostile.operator_flood_pdf,
     "page 1 of the PDF draws its text in more than 20,000 pieces; the limit is 20,000 per page"),
    ("flood3.pdf", lambda: hostile.operator_flood_pdf(3_000_000),
     "page 1 of the PDF unpacks to more than 4 MB of drawing instructions; the limit is 4 MB per page"),
    ("bomb.docx", hostile.docx_xml_bomb,
     "the Word document's text part is over 32 MB when unpacked; the limit is 32 MB"),
    ("big.csv", hostile.huge_csv, "the CSV file has more than 100,000 rows; the limit is 100,000"),
    ("headings.md", lambda: hostile.deep_cpu_text(1_800_000),  # 18 MB of one-line sections: 20 s, then out of memory
     "the document has more than 20,000 headings; the limit is 20,000"),
])
def test_hostile_files_are_refused_by_a_work_limit(name, build, reason, stopped):
    data = build()
    assert len(data) < LIMITS["max_bytes"]
    got, elapsed = refused(name, data)
    assert got == reason
    assert elapsed < SECONDS + 2
    assert len(stopped) == 1 and gone(stopped[0]) and not readers()


@pytest.mark.parametrize("name, build", [
    ("slow.pdf", hostile.slow_text_pdf),  # every work limit passes; about 13 s a page
])
def test_files_within_every_limit_are_stopped_by_the_deadline(name, build, stopped):
    data = build()
    assert len(data) < LIMITS["max_bytes"]
    reason, elapsed = refused(name, data, seconds=2)
    assert reason == "it could not be read within 2 s (too much work for a file of its size), so it was left out"
    assert 2 <= elapsed < 2 + 3
    assert len(stopped) == 1 and gone(stopped[0]) and not readers()


def test_a_file_needing_more_memory_than_the_limit_is_refused_for_it(stopped):
    """30 MB of tiny Word runs: within the 32 MB work limit, but python-docx's tree needs about 450 MB."""
    data = hostile.docx_xml_bomb(30)
    reason, elapsed = refused("bomb.docx", data, memory_mb=256, seconds=20)
    assert reason == "reading it needed more than 256 MB of memory (the limit for one file), so it was left out"
    assert elapsed < 10
    assert gone(stopped[0])
    # The same limit leaves room for an ordinary Word file.
    ordinary, _ = corpus.headed_docx()
    assert read_document("review.docx", ordinary, seconds=20, memory_mb=256, workers=2, **LIMITS).sections


def reading_slow_pdf(seconds: int):
    """A read of a slow PDF under way (its first page reported), and the child reading it."""
    work = read_in_worker("slow.pdf", hostile.slow_text_pdf(), seconds=seconds, memory_mb=MEMORY_MB, workers=2,
                          poll=0.05, **LIMITS)
    event = next(work)
    while event.page == 0:
        event = next(work)
    (child,) = readers()
    return work, child


def test_a_child_killed_by_the_system_is_explained(stopped):
    """What the kernel's OOM killer does (SIGKILL), done by hand to a child busy on a slow file."""
    work, child = reading_slow_pdf(seconds=30)
    try:
        os.kill(child.pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(DocumentRejected) as caught:
            while True:
                next(work)
        assert time.monotonic() - started < 6
    finally:
        work.close()
    assert caught.value.reason == ("reading it was stopped by the system, most likely for using too much memory (the "
                                   f"limit is {MEMORY_MB} MB), so it was left out")
    assert gone(stopped[0])


def test_a_child_left_unwatched_is_stopped_by_its_cpu_limit(stopped):
    """A caller that stops asking (a stalled page) cannot keep a child busy: RLIMIT_CPU ends it at seconds + 1."""
    work, child = reading_slow_pdf(seconds=1)
    try:
        child.join(timeout=10)  # nobody reads the pipe meanwhile
        assert child.exitcode == -signal.SIGXCPU
        with pytest.raises(DocumentRejected) as caught:
            while True:
                next(work)
    finally:
        work.close()
    assert caught.value.reason == ("it needed more than 1 s of processing to read (too much work for a file of its "
                                   "size), so it was left out")


# --- stopping and waiting -------------------------------------------------------------------------------------------

def test_closing_the_generator_kills_the_child_and_frees_the_slot(stopped):
    work = read_in_worker("slow.pdf", hostile.slow_text_pdf(), seconds=30, memory_mb=MEMORY_MB, workers=1, poll=0.05,
                          **LIMITS)
    event = next(work)
    while event.page == 0:
        event = next(work)
    assert event == ReadProgress("slow.pdf", 1, 500)
    (child,) = readers()
    pid = child.pid
    started = time.monotonic()
    work.close()  # what Stop (or closing the page) does to the caller's generator
    assert time.monotonic() - started < 2
    assert stopped == [pid] and gone(pid) and not readers()
    # The slot is free: another file reads at once, without waiting.
    events, document = drain(read_in_worker("notes.txt", b"hello", seconds=30, memory_mb=MEMORY_MB, workers=1,
                                            **LIMITS))
    assert not any(e.waiting for e in events) and document.text == "hello"


def test_closing_while_waiting_for_a_slot_leaves_the_pool_as_it_was():
    first = read_in_worker("slow.pdf", hostile.slow_text_pdf(), seconds=30, memory_mb=MEMORY_MB, workers=1,
                           poll=0.05, **LIMITS)
    second = read_in_worker("notes.txt", b"hello", seconds=30, memory_mb=MEMORY_MB, workers=1, poll=0.05, **LIMITS)
    try:
        assert next(first).waiting is False
        assert next(second) == ReadProgress("notes.txt", 0, 0, waiting=True)
        second.close()
    finally:
        first.close()
    _, document = drain(read_in_worker("notes.txt", b"hello", seconds=30, memory_mb=MEMORY_MB, workers=1, **LIMITS))
    assert document.text == "hello"


def test_with_one_worker_a_second_file_waits_until_the_first_is_done():
    first = read_in_worker("slow.pdf", hostile.slow_text_pdf(), seconds=30, memory_mb=MEMORY_MB, workers=1,
                           poll=0.05, **LIMITS)
    second = read_in_worker("notes.txt", b"hello", seconds=30, memory_mb=MEMORY_MB, workers=1, poll=0.05, **LIMITS)
    try:
        event = next(first)
        while event.page == 0:
            event = next(first)
        waiting = [next(second) for _ in range(5)]  # about 0.25 s of waiting, reported every poll
        assert all(e == ReadProgress("notes.txt", 0, 0, waiting=True) for e in waiting)
        assert len(readers()) == 1
        first.close()  # the first file is done with (here: stopped)
        events, document = drain(second)
    finally:
        first.close()
        second.close()
    assert events[0] == ReadProgress("notes.txt", 0, 0, waiting=False) and document.text == "hello"


# --- the process around the reader ---------------------------------------------------------------------------------

def test_the_callers_main_script_is_not_run_again_in_the_child(tmp_path, monkeypatch):
    """Under Streamlit, __main__ is the app's script while a session runs; a child must not run it again."""
    marker = tmp_path / "ran"
    script = tmp_path / "app.py"
    script.write_text(f"open({str(marker)!r}, 'a').write('ran')\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake)
    assert read_document("notes.txt", b"hello", seconds=30, memory_mb=MEMORY_MB, workers=2, **LIMITS).text == "hello"
    assert not marker.exists()


def test_works_when_sigint_is_ignored_from_the_start(guarded_child_env):
    """Background jobs start with SIGINT ignored."""
    program = textwrap.dedent("""
        import signal
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        from documents.extract import DocumentRejected
        from documents.worker import read_document
        limits = dict(max_bytes=1 << 20, max_pages=10, max_rows=100, seconds=10, memory_mb=512, workers=1)
        print(read_document("a.txt", b"hello", **limits).text)
        try:
            read_document("a.csv", b"a,b\\n" + b"1,2\\n" * 101, **limits)
        except DocumentRejected as exc:
            print(exc.reason)
    """)
    env = dict(os.environ) | guarded_child_env
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello", "the CSV file has more than 100 rows; the limit is 100"]
