"""One service per state directory: an exclusive lock on ``<state dir>/knowledger.lock`` for the life of the
process, taken before anything in the directory is read or written.

The embedded chain's journal and the default SQLite database belong to one process at a time; a second
``knowledger serve`` on the same directory (whatever its chain and database) is refused with the first
one's process id and command line, before it touches anything. The API processes of ``serve --workers N``
take no lock of their own: the command that started them holds it for as long as they serve. The lock is
the operating system's (``flock``): it goes away with its process, however that process ends (``kill -9``
included), so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

LOCK_FILE = "knowledger.lock"


class StateDirInUse(Exception):
    """Another live process holds the state directory; the message names it."""


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise StateDirInUse(
                f"{self.path.parent} is in use by {holder}: stop it first, or give this one its own "
                "KNOWLEDGER_STATE_DIR"
            ) from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"process {info['pid']} ({info['command']})"
    except (ValueError, KeyError, OSError):
        return "another process"
