"""Durable file writes shared by the local storage and the vault's key files.

A file is written to a temporary sibling, flushed and fsynced, then renamed (or linked) into place;
the folder is fsynced so that the rename survives a crash. A temporary file is never left behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]


def write_temp(folder: Path, prefix: str, content: bytes, *, mode: int = 0o644) -> str:
    """A new temporary file in ``folder`` holding ``content``, on disk (fsynced), with ``mode``; its path."""
    fd, temp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
    except BaseException:
        unlink_quietly(temp)
        raise
    return temp


def replace_file(path: Path, content: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` atomically: readers see the old content or the new one, never a part."""
    temp = write_temp(path.parent, f".{path.name}.", content, mode=mode)
    try:
        os.replace(temp, path)
    except BaseException:
        unlink_quietly(temp)
        raise


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` between processes (flock); none where flock does not exist."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
