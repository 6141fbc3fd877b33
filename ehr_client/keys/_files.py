"""Crash-safe, owner-only file writes: temp file (0600), fsync, then link or rename into place."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_dir(path: Path) -> None:
    """Create the keystore directory owner-only (0700) if it does not exist."""
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)


def create_new(path: Path, data: bytes) -> None:
    """Write `path` atomically, failing with FileExistsError if it already exists."""
    temp = _write_temp(path, data)
    try:
        try:
            os.link(temp, path)  # atomic and never clobbers
        except FileExistsError:
            raise
        except OSError:  # filesystems without hard links
            if path.exists():
                raise FileExistsError(path) from None
            os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _fsync_dir(path.parent)


def replace(path: Path, data: bytes) -> None:
    """Atomically replace `path` (readers see the old or the new content, never a mix)."""
    temp = _write_temp(path, data)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)


def _write_temp(path: Path, data: bytes) -> Path:
    temp = path.with_name(f".tmp-{secrets.token_hex(8)}-{path.name}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)  # exactly 0600, whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    return temp


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
