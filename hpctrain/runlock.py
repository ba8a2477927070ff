"""One training at a time per run directory: a lock file naming its holder.

`RUN/.hpctrain.lock` is created exclusively (O_CREAT|O_EXCL: of two trainings started at once,
exactly one wins) and holds the holder's host, pid and start time. A second training into the
same directory is refused naming the holder. A lock whose holder is gone — same host, no such
process (a job killed by kill -9 or MPI_Abort) — is taken over with a note; on another host
the holder cannot be checked from here, so the message says how to clear it by hand.
"""

import json
import os
import socket
import time

from .atomic import writing
from .errors import InputError

LOCK_NAME = ".hpctrain.lock"


class RunLock:
    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.held = False
        self.made_dir = None

    def acquire(self, note=print) -> None:
        """Take the lock (creating the run directory if needed); InputError if it is held."""
        with writing(self.path):
            self._acquire(note)

    def _acquire(self, note) -> None:
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            os.makedirs(folder)
            self.made_dir = folder
        for _ in range(2):  # a second try after taking over a stale lock
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_or_refuse(note)
                continue
            self.held = True
            with os.fdopen(fd, "w") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(),
                           "started": time.time()}, f)
            return
        raise InputError("run directory is locked by another training", folder)

    def _take_over_or_refuse(self, note) -> None:
        holder = read_holder(self.path)
        host, pid = holder.get("host"), holder.get("pid")
        folder = os.path.dirname(self.path)
        if host == socket.gethostname() and isinstance(pid, int) and not alive(pid):
            note(f"hpctrain: note: taking over the lock of {host} pid {pid}, which is gone "
                 f"({self.path})")
            os.unlink(self.path)
            return
        where = f"host {host} pid {pid}" if host else "an unreadable lock file"
        raise InputError(f"run directory is in use by another training ({where}); if that "
                         f"job is gone, delete {self.path}", folder)

    def release(self) -> None:
        if self.held:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.held = False
        if self.made_dir and not os.listdir(self.made_dir):  # made for a run that never ran
            os.rmdir(self.made_dir)
        self.made_dir = None


def read_holder(path) -> dict:
    try:
        with open(path) as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def alive(pid: int) -> bool:
    """Does process pid exist and run? (A zombie, killed but not yet reaped, does not.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (not Linux): kill(0) is all we know
        return True
