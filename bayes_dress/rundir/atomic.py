"""Atomic writing: a directory or file appears complete or not at all, never half.

A run is written into a hidden sibling (``.NAME.tmp-PID-RANDOM``) and moved into place in
one step at the end. Without ``overwrite`` that step is a rename that fails if the
destination exists (Linux ``renameat2(RENAME_NOREPLACE)``), so of two runs started into
one destination exactly one wins and the other fails cleanly; with ``overwrite`` it is an
atomic exchange (``RENAME_EXCHANGE``), so the last complete run wins and a reader never
sees a mixture. Where the kernel or file system lacks those calls, the check and the
rename are serialised by a lock file in the parent instead. A temporary directory whose
process is gone (killed outright) is removed by the next run into the same parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from bayes_dress.errors import OutputError

#: Marks a temporary directory as this package's (so cleanup never touches another's).
TMP_MARKER = ".bayes-dress-incomplete"
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$")
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - not glibc
        return None


_LIBC = _libc()


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """rename(2) with flags; False when the system does not offer it (then the caller
    falls back on a lock), an OSError for any other failure."""
    function = getattr(_LIBC, "renameat2", None) if _LIBC is not None else None
    if function is None:
        return False
    result = function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst),
                      ctypes.c_uint(flags))
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(dst))


@contextlib.contextmanager
def _parent_lock(parent: Path, name: str) -> Iterator[None]:
    """An exclusive lock serialising the final step of runs into ``parent/name``."""
    path = parent / f".{name}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _exists_message(out: Path) -> str:
    return (f"results directory '{out}' already exists; pass --overwrite to replace it, "
            "or choose another --out")


def commit(tmp: Path, out: Path, *, overwrite: bool) -> None:
    """Move the complete directory ``tmp`` to ``out`` in one step (see the module)."""
    (tmp / TMP_MARKER).unlink(missing_ok=True)
    try:
        if not overwrite:
            if _renameat2(tmp, out, _RENAME_NOREPLACE):
                return
            with _parent_lock(out.parent, out.name):
                if out.exists():
                    raise OutputError(_exists_message(out))
                os.rename(tmp, out)
            return
        if out.exists() and not out.is_dir():
            raise OutputError(f"'{out}' exists and is not a directory")
        for _ in range(5):  # another run may create or replace out meanwhile
            try:
                if not _renameat2(tmp, out, _RENAME_EXCHANGE):
                    break  # not offered here: the lock below
                shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous run
                return
            except FileNotFoundError:  # nothing to exchange with
                try:
                    if _renameat2(tmp, out, _RENAME_NOREPLACE):
                        return
                    break
                except FileExistsError:
                    continue
        with _parent_lock(out.parent, out.name):
            old = None
            if out.exists():
                old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(out, old)
            os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except FileExistsError:
        raise OutputError(_exists_message(out)) from None
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise OutputError(_exists_message(out)) from None
        raise OutputError(f"cannot create '{out}': {err.strerror or err}") from None


def remove_stale(parent: Path) -> list[Path]:
    """Remove this package's temporary directories in ``parent`` whose process has
    ended (a run killed outright); returns what was removed."""
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_NAME.match(entry.name)
        if not match or not (entry / TMP_MARKER).exists():
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_destination(out: Path, *, overwrite: bool) -> None:
    """Fail early, before any fitting, if ``out`` cannot be written as asked (the final
    step checks again, atomically)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"'{out}' exists and is not a directory")
    if out.exists() and not overwrite:
        raise OutputError(_exists_message(out))
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise OutputError(f"cannot create '{out}': '{parent}' is a file, not a directory")
    if parent is not None and not os.access(parent, os.W_OK):
        raise OutputError(f"cannot create '{out}': '{parent}' is not writable")


@contextlib.contextmanager
def atomic_directory(out: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``out`` only if the block succeeds; on
    any error or interruption (KeyboardInterrupt, a SIGTERM turned into an exception)
    the temporary directory is removed and ``out`` is as it was."""
    out = Path(out)
    check_destination(out, overwrite=overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out.parent)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        (tmp / TMP_MARKER).touch()
    except OSError as err:
        raise OutputError(f"cannot create '{out}': {err.strerror}") from None
    try:
        yield tmp
        commit(tmp, out, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) via a unique temporary sibling moved into place
    with :func:`os.replace`, so a reader never sees half a file; the temporary file is
    removed if anything fails (and the error re-raised)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(directory: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """SHA-256 of every file below ``directory`` by relative POSIX path, except those
    under the top-level names in ``skip``."""
    hashes = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_file() or relative.parts[0] in skip or path.name == TMP_MARKER:
            continue
        hashes[relative.as_posix()] = sha256(path)
    return hashes
