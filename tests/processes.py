"""Child processes that cannot hang a test run or a benchmark: each child starts in a session of its own (so its whole
process group can be killed, grandchildren included), a daemon thread reads its output, and every wait has a time
limit. When a limit expires the group is killed and ChildFailure (an AssertionError: the test fails) is raised."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

TAIL = 40  # output lines quoted in a failure


class ChildFailure(AssertionError):
    """A child did not print, exit or finish in time, or left processes behind; its process group has been killed."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    pgid: int
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.pid} {' '.join(self.argv)[:120]}"


def processes() -> list[Process]:
    """Every live process on this machine, from /proc. Zombies are left out: an orphan that has exited stays one until
    PID 1 reaps it, and some PID 1s never do."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:  # it exited meanwhile
            continue
        state, ppid, pgid = stat[stat.rindex(")") + 2:].split()[:3]
        if state not in ("Z", "X"):
            found.append(Process(int(entry), int(ppid), int(pgid), tuple(a.decode(errors="replace") for a in argv if a)))
    return found


def group_members(pgid: int) -> list[Process]:
    return [p for p in processes() if p.pgid == pgid]


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # nothing left in it
        pass


def _wait_group_empty(pgid: int, timeout: float) -> list[Process]:
    """Waits up to `timeout` s for every process of the group to exit; returns those still running."""
    deadline = time.monotonic() + timeout
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-TAIL:])


class Child:
    """A child in its own session. With `capture`, its stdout and stderr (merged) arrive line by line in `lines`."""

    def __init__(self, command: list[str], *, cwd=None, env: dict[str, str] | None = None, capture: bool = True,
                 preexec_fn=None, name: str | None = None):
        self.name = name or " ".join(map(str, command[:4]))
        self.capture = capture
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._closed = not capture
        stdout = subprocess.PIPE if capture else subprocess.DEVNULL
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
            text=True, encoding="utf-8", errors="replace", start_new_session=True, preexec_fn=preexec_fn)
        self.pid = self.pgid = self.process.pid  # a session leader leads its own process group
        self._reader = threading.Thread(target=self._read, name=f"output of {self.pid}", daemon=True)
        if capture:
            self._reader.start()

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def _read(self) -> None:
        try:
            with self.process.stdout as stream:
                for line in stream:
                    with self._changed:
                        self.lines.append(line.rstrip())
                        self._changed.notify_all()
        finally:
            with self._changed:
                self._closed = True
                self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def fail(self, why: str) -> NoReturn:
        raise ChildFailure(f"{self.name} (pid {self.pid}) {why}; its process group was killed. Output:\n"
                           f"{_tail(self.output)}", self.output)

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match:
        """The first output line matching `pattern`; fails if none comes within `timeout` s or the output ends."""
        if not self.capture:
            raise ValueError("the child's output is not captured")
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = 0
        with self._changed:
            while True:
                for line in self.lines[checked:]:
                    if match := regex.search(line):
                        return match
                checked = len(self.lines)
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    break
                self._changed.wait(left)
            ended = self._closed
        self.kill()
        if ended:
            self.fail(f"ended its output (exit code {self.process.returncode}) without a line matching {pattern!r}")
        self.fail(f"printed no line matching {pattern!r} within {timeout:g} s")

    def send_signal(self, sig: int) -> None:
        """To the child alone, as `kill -<sig> <pid>` would."""
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self, sig: int | None = signal.SIGTERM, timeout: float = 20.0, *, grace: float = 10.0,
             check: bool = True) -> int:
        """Sends `sig` to the child (None: sends nothing) and waits up to `timeout` s for it to exit, then up to `grace` s
        for the rest of its process group. Whatever still runs then is killed; with `check` that fails. Returns the
        child's exit code."""
        if sig is not None:
            self.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            if check:
                signalled = f" of {signal.Signals(sig).name}" if sig is not None else ""
                self.fail(f"did not exit within {timeout:g} s{signalled}")
            return self.process.returncode
        left = _wait_group_empty(self.pgid, grace)
        self.kill()
        if left and check:
            self.fail(f"exited (code {self.process.returncode}) but left {', '.join(map(str, left))} running")
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL to the whole process group, then bounded waits for the child and the end of its output."""
        _kill_group(self.pgid)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:  # stuck in the kernel; nothing more can be done
            pass
        if self._reader.is_alive():
            self._reader.join(5)  # a process outside the group may still hold the pipe: then give up on the rest


def run(command: list[str], *, timeout: float, grace: float = 5.0, check: bool = False, capture_output: bool = False,
        **popen_kwargs) -> subprocess.CompletedProcess:
    """subprocess.run in a session of its own, with a limit that holds even when grandchildren keep its pipes open: on
    expiry the process group gets SIGTERM, `grace` s later SIGKILL, and ChildFailure is raised with the output so far."""
    if capture_output:
        popen_kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process = subprocess.Popen(command, start_new_session=True, **popen_kwargs)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        _kill_group(process.pid, signal.SIGTERM)  # lets a script's exit trap clean up
        _wait_group_empty(process.pid, grace)
        _kill_group(process.pid)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()
        output = "\n".join(part.decode(errors="replace") if isinstance(part, bytes) else part
                           for part in (expired.stdout, expired.stderr) if part)
        raise ChildFailure(f"{' '.join(map(str, command[:4]))} (pid {process.pid}) did not finish within {timeout:g} s; "
                           f"its process group was killed. Output:\n{_tail(output)}", output) from None
    if check and process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command, stdout, stderr)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
