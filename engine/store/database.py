"""One SQLite file shared by many processes: private to its owner, in WAL mode, patient with a busy writer.

Every process of the app, and each `python -m engine`, opens the same file, sometimes all at once on a
file that does not exist yet. A write takes the write lock up front (`BEGIN IMMEDIATE`) so two processes
never both decide to create the schema; SQLite answers some collisions (a WAL recovery, a journal-mode
change) with SQLITE_BUSY without waiting, so each step tries again for up to BUSY_S.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

BUSY_S = 10.0  # how long a step waits for another process holding the file
PRIVATE = 0o600
T = TypeVar("T")


def one_line(exc: BaseException) -> str:
    """An exception's reason in one line: "database or disk is full", "Permission denied"."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def retrying(work: Callable[[], T]) -> T:
    """`work()`, tried again while another process holds the file."""
    deadline = time.monotonic() + BUSY_S
    pause = 0.005
    while True:
        try:
            return work()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause * random.uniform(0.5, 1.5))  # jittered: processes that collided do not collide again
        pause = min(pause * 2, 0.2)


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return "locked" in str(exc) or "busy" in str(exc)
    return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)  # an extended code's low byte is its primary


class Database:
    """A connection to one file, shared by this process's threads; every step retries on SQLITE_BUSY."""

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            _create_private(path)
        self._conn = sqlite3.connect(path, timeout=BUSY_S, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        try:
            retrying(self._use_wal)
            if path != ":memory:":
                _keep_private(path)
        except BaseException:
            self._conn.close()
            raise

    def _use_wal(self) -> None:
        """WAL lets pages read while a run writes; the mode is set outside any transaction, as SQLite requires."""
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL").fetchone()

    def migrate(self, steps: list[str]) -> None:
        """Bring the schema to `len(steps)`, in one write transaction, so concurrent openers apply it once."""
        if self.rows("PRAGMA user_version")[0]["user_version"] >= len(steps):
            return

        def apply(conn: sqlite3.Connection) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # again, now that the write lock is held
            for step, sql in enumerate(steps[version:], start=version + 1):
                conn.execute(sql)
                conn.execute(f"PRAGMA user_version = {step}")

        self.transaction(apply)

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self._lock:
                cursor = self._conn.execute(sql, params)
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        return retrying(read)

    def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` inside one write transaction: all of it is written, or none."""

        def attempt() -> T:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._conn)
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:  # SQLite rolls some failures (a full disk) back by itself
                        self._conn.execute("ROLLBACK")
                    raise
                return result

        return retrying(attempt)

    def close(self) -> None:
        self._conn.close()


def _create_private(path: str) -> None:
    """The file (and a missing folder) for its owner only, made before SQLite opens it.

    SQLite gives the -wal and -shm files the database file's own mode, so creating it 0600 covers all three
    without changing the process-wide umask under the app's other threads.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):  # (a file in its place is refused by the open below as "Not a directory")
        os.makedirs(folder, mode=0o700, exist_ok=True)  # exist_ok: another process may make it meanwhile
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE))


def _keep_private(path: str) -> None:
    """A store made before files were private (or by another tool) loses its group and other permissions."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            info = os.stat(name)
            if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                os.chmod(name, PRIVATE)
        except FileNotFoundError:  # -wal and -shm go when the last connection closes
            pass
