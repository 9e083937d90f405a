"""Small file helpers: writes are atomic (temp file + rename) so a killed run never leaves half a file."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; a written file gets the mode a plain open() would give it (0644 under umask 022)
FILE_MODE = 0o666 & ~_process_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    if path.is_dir():          # os.replace would blame the temporary file, after the work
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):          # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ---- one writer per run directory --------------------------------------------------------------------------------

LOCK_NAME = ".artcap.lock"
LOCK_ENV = "ARTCAP_RUN_LOCK"      # set by the holder for its child processes (notebook kernels): already theirs


class RunLockedError(RuntimeError):
    """Another process is writing this run directory."""


class RunLock:
    """An exclusive lock on a run directory, held while a run writes it: two runs on one directory would append
    the same captions twice and race on shared files. `flock` ends with its process, so a killed run never leaves
    a stale lock; the lock file says who holds it, for the refusal message.

    >>> with RunLock(paths.root, "artcap reproduce --profile demo"):
    ...     ...
    """

    def __init__(self, root: str | Path, holder: str):
        self.root, self.holder, self._fh = Path(root), holder, None

    def acquire(self) -> "RunLock":
        import fcntl
        import socket
        import time
        if os.environ.get(LOCK_ENV) == str(self.root.resolve()):
            return self                   # a child of the holder (a notebook kernel of `artcap reproduce`)
        self.root.mkdir(parents=True, exist_ok=True)
        fh = open(self.root / LOCK_NAME, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            held_by = fh.read().strip() or "another process"
            fh.close()
            raise RunLockedError(f"{self.root} is in use by {held_by}; wait for it to finish or choose another "
                                 "run_dir (--set run_dir=...)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} ({self.holder}), since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()              # closing drops the flock
            self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ---- one writer per file -----------------------------------------------------------------------------------------


class FileLockedError(RuntimeError):
    """Another process is writing this file."""


class FileLock:
    """An exclusive `flock` on a file itself, for files that many commands append to (a caption file): two writers
    at once would each append the ids the other is writing. Reentrant within a process (every holder of one path
    shares one open file and a count), so the step that takes it before loading a model and the store that appends
    under it do not refuse each other. The file is created if absent (a lock needs an inode). The refusal names the
    holder's pid and command line, read from /proc on Linux.

    >>> with FileLock("captions/llava.jsonl", "write to another file (--out)"):
    ...     ...
    """
    _held: dict[str, list] = {}          # resolved path -> [open file, holders in this process]
    _guard = threading.Lock()

    def __init__(self, path: str | Path, remedy: str = "wait for it to finish"):
        self.path, self.remedy, self._key = Path(path), remedy, None

    def acquire(self) -> "FileLock":
        import fcntl
        if self._key is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = str(self.path.resolve())
        with self._guard:
            entry = self._held.get(key)
            if entry is None:
                fh = open(self.path, "ab")
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _flock_holder(fh.fileno())
                    fh.close()
                    raise FileLockedError(f"{self.path} is being written by {holder}; {self.remedy}") from None
                entry = self._held[key] = [fh, 0]
            entry[1] += 1
        self._key = key
        return self

    def release(self) -> None:
        with self._guard:
            if self._key is None:
                return
            entry = self._held[self._key]
            entry[1] -= 1
            if entry[1] == 0:
                entry[0].close()          # closing drops the flock
                del self._held[self._key]
            self._key = None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _flock_holder(fd: int) -> str:
    """'pid 123 (artcap caption --out x.jsonl)' for the process holding a flock on fd's file (Linux /proc/locks)."""
    st = os.fstat(fd)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == inode:
                    pid = fields[4]
                    with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                        words = [w.decode(errors="replace") for w in cmd.read().split(b"\0") if w]
                    command = " ".join([Path(words[0]).name, *words[1:]] if words else ["?"])
                    command = " ".join(command.split())          # a `python -c` script's newlines
                    return f"pid {pid} ({command[:117] + '...' if len(command) > 120 else command})"
    except OSError:
        pass                              # not Linux, or the holder has just exited
    return "another process"
