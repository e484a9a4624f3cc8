"""Stopping `make run` (python -m localdev.stack): SIGINT and SIGTERM stop the whole stack whatever signal
dispositions it inherited, and even SIGKILL leaves no Streamlit app running on its own. Every wait is bounded: a
regression fails these tests, it cannot hang them."""
from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.conftest import Stack, start_stack
from tests.processes import Process, processes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def as_a_background_job() -> None:
    """preexec_fn: a background job of a non-interactive shell (`make run &` in a script) starts with SIGINT ignored,
    and Python then installs no KeyboardInterrupt handler. SIGTERM is ignored too: no inherited disposition may
    matter."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def listening_ports() -> set[int]:
    """TCP ports with a listening socket in this network namespace (state 0A in /proc/net/tcp*)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if state == "0A":
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def the_app(stack: Stack) -> Process:
    apps = [p for p in processes() if p.ppid == stack.process.pid and "streamlit" in p.argv]
    assert len(apps) == 1, f"expected one Streamlit child of the stack, found {apps}"
    return apps[0]


def running(process: Process) -> bool:
    return any(p.pid == process.pid and p.argv == process.argv for p in processes())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_whole_stack_started_as_a_background_job(sig, tmp_path, secrets_audit):
    stack = start_stack(tmp_path, preexec_fn=as_a_background_job)
    with stack.child:  # kills the whole group whatever happens
        app = the_app(stack)
        assert set(stack.ports.values()) <= listening_ports()
        # Fails (after killing the group) if the stack has not exited 30 s after the signal, or if anything of its
        # process group, such as the Streamlit child, is still running 10 s after that.
        assert stack.stop(sig, timeout=30) == 0
        secrets_audit.texts.extend(stack.output)
        assert not running(app), "the Streamlit child outlived the stack"
        assert not set(stack.ports.values()) & listening_ports(), "a port of the stack is still listening"
        output = "\n".join(stack.output)
        assert "[make run] stopping..." in output and "[make run] stopped." in output
    assert stack.netguard_log.read_text() == "", "a process of the stack tried to reach beyond 127.0.0.1"


def test_sigkill_of_the_stack_leaves_no_streamlit_running(tmp_path, secrets_audit):
    stack = start_stack(tmp_path)
    with stack.child:
        app = the_app(stack)
        stack.child.send_signal(signal.SIGKILL)
        stack.process.wait(10)
        deadline = time.monotonic() + 20  # Streamlit gets SIGTERM when its parent dies and stops in a few seconds
        while running(app) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(app), "the Streamlit child was left running after the stack was killed"
        assert stack.ports["app"] not in listening_ports()
        secrets_audit.texts.extend(stack.output)
