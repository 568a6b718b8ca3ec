"""One writer for every file the tool creates (exports, tax files, HTML reports, backups, caches).

- Owner-only (0600) whatever the umask.
- All of the file or none of it: written to a temporary file created exclusively
  (``O_CREAT | O_EXCL | O_NOFOLLOW``) under a random name in the target's directory, then renamed
  into place. A planted symlink is never followed, and two writers never share a temporary file.
- Only a regular file is ever replaced, and only when asked (``force``); never a symlink, a
  directory or a device. Without ``force`` an existing file is refused, and the final step links
  rather than renames, so a file that appears meanwhile is not overwritten either.
- A writer killed half-way leaves its temporary file behind; the next write to the same target
  removes it. A temporary file is named after its writer's process and locked while written, so one
  whose process is alive or that is still locked is never touched.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from portfolio_cli.errors import InvalidInput, StorageFailure

MODE = 0o600
SUFFIX = ".tmp"
PREFIX_BYTES = 180  # room for the dots, a process id, 16 hex digits, ".tmp" and SQLite's "-journal"
LEFTOVER = re.compile(r"\.(\d{1,10})-[0-9a-f]{16}\.tmp")
# SQLite's companions of a database file (a backup's temporary copy has them while it is written).
COMPANIONS = ("-journal", "-wal", "-shm")


def write_text(path: Path, write: Callable[[TextIO], None], force: bool = False) -> None:
    """Write ``path`` as UTF-8 text through ``write`` (called with the open file), all or nothing."""
    with replacing(path, force) as (fd, _), open(os.dup(fd), "w", encoding="utf-8", newline="") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def write_bytes(path: Path, data: bytes, force: bool = False) -> None:
    """Write ``path`` with ``data``, all or nothing, as ``write_text`` does."""
    with replacing(path, force) as (fd, _), open(os.dup(fd), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@contextmanager
def replacing(path: Path, force: bool = False) -> Iterator[tuple[int, Path]]:
    """A new, empty, owner-only temporary file beside ``path`` (its descriptor and its path); when
    the block ends without an exception it becomes ``path``, else it is removed. Every failure is
    a ``StorageFailure`` (disk full, read-only, I/O error) or an ``InvalidInput`` (the path)."""
    path = Path(path)
    check_target(path, force)
    sweep(path)
    temp = path.with_name(f".{_prefix(path.name)}.{os.getpid()}-{secrets.token_hex(8)}{SUFFIX}")
    try:
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, MODE)
    except OSError as exc:
        raise failure(path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # tells a later sweep this writer is alive
        os.fchmod(fd, MODE)  # the umask can only have taken bits away; make it exactly 0600
        try:
            yield fd, temp
            publish(temp, path, force)
        except OSError as exc:
            raise failure(path, exc) from None
    finally:
        os.close(fd)
        for leftover in (temp, *(temp.with_name(temp.name + c) for c in COMPANIONS)):
            try:
                os.unlink(leftover)
            except OSError:
                pass


def check_target(path: Path, force: bool) -> None:
    """Refuse a target that is not a regular file, and an existing one unless ``force``."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise failure(path, exc) from None
    if stat.S_ISLNK(found.st_mode):
        raise InvalidInput(f"{path} is a symbolic link; refusing to write through it")
    if not stat.S_ISREG(found.st_mode):
        raise InvalidInput(f"{path} exists and is not a regular file; refusing to replace it")
    if not force:
        raise InvalidInput(f"{path} already exists; use --force to replace it")


def publish(temp: Path, path: Path, force: bool) -> None:
    if force:
        check_target(path, force)  # still a regular file (or nothing) just before it is replaced
        os.replace(temp, path)  # a rename replaces a symlink itself, never what it points to
    else:
        try:
            os.link(temp, path, follow_symlinks=False)  # fails if anything appeared at ``path``
        except FileExistsError:
            raise InvalidInput(f"{path} already exists; use --force to replace it") from None
    _sync_dir(path.parent)


def sweep(path: Path) -> None:
    """Remove temporary files left for ``path`` by writers that were killed: their process is gone
    and nothing holds their lock."""
    start = f".{_prefix(path.name)}"
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        found = LEFTOVER.fullmatch(name[len(start) :]) if name.startswith(start) else None
        if found is None or _alive(int(found.group(1))):
            continue
        leftover = path.with_name(name)
        try:
            fd = os.open(leftover, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or os.fstat(fd).st_uid != os.getuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its writer is still at work
            for companion in (leftover, *(leftover.with_name(name + c) for c in COMPANIONS)):
                try:
                    os.unlink(companion)
                except OSError:
                    pass
        finally:
            os.close(fd)


def failure(path: Path, exc: OSError) -> InvalidInput | StorageFailure:
    """An OSError as the trader should read it: the path's fault (exit 2) or the storage's (exit 6)."""
    code = exc.errno
    if code == errno.ENAMETOOLONG:
        return InvalidInput(f"cannot write {path}: the file name is too long")
    if code in (errno.ENOENT, errno.ENOTDIR):
        return InvalidInput(f"cannot write {path}: no such directory")
    if code in (errno.EISDIR, errno.ELOOP):
        return InvalidInput(f"cannot write {path}: it is a directory or a symbolic link")
    return StorageFailure(f"cannot write {path}: {describe(exc)}")


def describe(exc: OSError) -> str:
    """The reason, in words: a full disk is named as such."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno == errno.EFBIG:
        return "the file is too large for this disk or limit"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _prefix(name: str) -> str:
    return name.encode()[:PREFIX_BYTES].decode(errors="ignore")


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
