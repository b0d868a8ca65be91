"""Durable file replacement: what a file or a rename must go through to survive a power
loss.

Theory of operation: a file is written beside its destination, fsynced and renamed over
it, so a reader sees the old contents or the new, never a part; the rename itself is only
durable once the directory holding it is fsynced too.
"""

from __future__ import annotations

import os


def write_atomically(path: str, data: bytes) -> None:
    """Replace `path` with `data`: written beside, fsynced, renamed, directory fsynced."""
    partial = path + ".partial"
    with open(partial, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    fsync_directory(os.path.dirname(path))


def fsync_directory(directory: str) -> None:
    """Make the renames and removals done in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
