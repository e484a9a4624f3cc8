"""tests/processes.py: a child that does not print, does not stop, or leaves a grandchild holding its output makes the
waiting test fail within its limit, with the child's whole process group killed."""
from __future__ import annotations

import signal
import sys
import time

import pytest

from tests.processes import Child, ChildFailure, group_members, run

STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(60)")


def test_a_line_is_found_and_a_missing_one_fails_in_time():
    with Child([sys.executable, "-c", "print('port 1234', flush=True); import time; time.sleep(60)"]) as child:
        assert child.wait_for_line(r"port (\d+)", timeout=30).group(1) == "1234"
        started = time.monotonic()
        with pytest.raises(ChildFailure, match="no line matching"):
            child.wait_for_line("never printed", timeout=0.5)
        assert time.monotonic() - started < 15
        assert child.process.poll() is not None and not group_members(child.pgid)


def test_output_that_ends_without_the_line_fails_at_once():
    with Child([sys.executable, "-c", "print('something else')"]) as child:
        with pytest.raises(ChildFailure, match="ended its output"):
            child.wait_for_line("ready", timeout=30)


def test_a_child_ignoring_the_signal_is_killed_and_fails():
    with Child([sys.executable, "-c", STUBBORN]) as child:
        child.wait_for_line("ready", timeout=30)
        started = time.monotonic()
        with pytest.raises(ChildFailure, match="did not exit within 1 s of SIGTERM"):
            child.stop(signal.SIGTERM, timeout=1)
        assert time.monotonic() - started < 15
        assert child.process.returncode == -signal.SIGKILL


def test_a_grandchild_holding_the_output_is_killed_and_fails():
    # The stack's old failure: its child outlived it and kept the pipe open, so reading to the end never returned.
    with Child(["sh", "-c", "sleep 60 & echo started"]) as child:
        child.wait_for_line("started", timeout=30)
        started = time.monotonic()
        with pytest.raises(ChildFailure, match="left .*sleep 60.* running"):
            child.stop(None, timeout=10, grace=1)
        assert time.monotonic() - started < 20
        assert not group_members(child.pgid)


def test_run_kills_the_whole_group_on_expiry():
    started = time.monotonic()
    with pytest.raises(ChildFailure, match="did not finish within 1 s") as failure:
        run(["sh", "-c", "echo begun; sleep 60 & sleep 60"], timeout=1, grace=1, capture_output=True, text=True)
    assert time.monotonic() - started < 20
    assert "begun" in failure.value.output


def test_run_returns_like_subprocess_run():
    done = run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
               timeout=30, capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
