"""Celery workers and beats as child processes, started with the documented command, ready when they say so.

One launcher for the integration tests (one worker per session), the fault tests (workers killed, beats
started twice) and the benchmarks (workers on chosen queues). Processes are found through /proc by parent
pid, never by name, so nothing this did not start is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from testsupport.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
WORKER_READY = b" ready."
BEAT_READY = b"beat: Starting"


def worker_args(
    name: str, *, concurrency: int = 2, queues: str | None = None, heartbeat: bool = True
) -> list[str]:
    """`celery -A workers` arguments for a worker as production runs it (INFO is also where `ready.` is
    logged), named `name@host` so several can share a broker."""
    return [
        "worker",
        "--loglevel=INFO",
        f"--concurrency={concurrency}",
        "--without-gossip",
        "--without-mingle",
        *([] if heartbeat else ["--without-heartbeat"]),
        "-n",
        f"{name}@%h",
        *(["-Q", queues] if queues else []),
    ]


def dies_with_parent() -> list[str]:
    """A command prefix so the child gets SIGTERM when this process dies, even by SIGKILL: an orphaned
    worker would go on taking tasks from its Redis db, which a later run may be using."""
    return ["setpriv", "--pdeathsig", "SIGTERM", "--"] if shutil.which("setpriv") else []


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (read from /proc; no process is matched by name)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2 :].split()[0] != "Z"


class CeleryProcess:
    """`celery -A workers worker|beat` as a child process with the given environment, logging to a file.

    The constructor returns once `ready_marker` is in the log (a bounded wait; a process that exits first
    fails with its log). `prefix` goes before the interpreter (e.g. `dies_with_parent()`)."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        ready_marker: bytes,
        *,
        prefix: Sequence[str] = (),
        ready_timeout: float = 60,
    ) -> None:
        self.args, self.env, self.ready_marker = list(args), env, ready_marker
        self.expected_exit = False  # set when the caller itself kills or stops it
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "celery", "-A", "workers", *args],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{args[0]} exited:\n" + self.tail())
            return ready_marker in self.log_path.read_bytes()

        wait_for(ready, timeout=ready_timeout, interval=0.1, message=f"celery {args[0]} to start")

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def last_error(self) -> str:
        """The last CRITICAL or ERROR line of the log, shortened."""
        lines = [
            line
            for line in self.log_path.read_text(errors="replace").splitlines()
            if '"CRITICAL"' in line or '"ERROR"' in line
        ]
        return lines[-1][:300] if lines else "(no error logged)"

    def log_count(self, needle: bytes) -> int:
        return self.log_path.read_bytes().count(needle)

    def pool_children(self) -> list[int]:
        return [pid for pid in children_of(self.pid) if alive(pid)]

    def kill_children(self) -> list[int]:
        """SIGKILL the pool's child processes (the main process stays and forks new ones)."""
        killed = self.pool_children()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        return killed

    def kill(self) -> list[int]:
        """SIGKILL the main process and its children at once: nothing gets to ack, reject or clean up."""
        self.expected_exit = True
        pids = [self.pid, *self.pool_children()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        wait_for(lambda: not any(alive(p) for p in pids[1:]), timeout=10, message="killed children to go")
        self._log.close()
        return pids

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (a warm shutdown), a bounded wait, then SIGKILL for whatever is left."""
        self.expected_exit = True
        if self.proc.poll() is None:
            children = self.pool_children()
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
            for pid in children:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()
