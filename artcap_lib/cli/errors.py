"""The mistakes and faults that end an `artcap` command in one line instead of a traceback.

A line names the path or the setting and what to do. The traceback stays one flag away: `--debug` on any command,
or ARTCAP_DEBUG=1 in the environment (what to set under torchrun or in CI). Anything not recognised here is a bug
or something new, and keeps its traceback.

    return report(err, args)      # in cli.main: prints the line and returns the exit status, or re-raises
"""
from __future__ import annotations

import errno
import os
import sys

from artcap_lib.captioning.store import CaptionFileError
from artcap_lib.config import ProfileError
from artcap_lib.data.collection import CollectionError
from artcap_lib.files import FileLockedError, RunLockedError

DEBUG_ENV = "ARTCAP_DEBUG"


class UserError(ValueError):
    """A mistake found by a command's own checks (a model folder that is not there, a device torch does not have);
    its message is the one line."""


def debugging(args) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def report(err: Exception, args) -> int:
    """Print `err` as one line on stderr and return the exit status (2: the input, 1: the machine), or re-raise it
    when it is not a known mistake or when debugging."""
    found = explain(err, args)
    if found is None or debugging(args):
        raise err
    line, status = found
    print(f"{getattr(args, 'prog', 'artcap')}: {line} (--debug shows the traceback)"
          if status == 1 else f"{getattr(args, 'prog', 'artcap')}: {line}", file=sys.stderr)
    return status


def explain(err: Exception, args) -> tuple[str, int] | None:
    """(the line, the exit status) for a known mistake or fault, else None."""
    if isinstance(err, (ProfileError, RunLockedError, FileLockedError, CaptionFileError, UserError, CollectionError)):
        return str(err), 2
    if not isinstance(err, OSError):
        return None
    where = err.filename or _run_dir(args)
    if err.errno == errno.ENOSPC:
        return (f"no space left on the device of {where}: free some, or write elsewhere "
                "(--set run_dir=..., --out ...)"), 1
    if err.errno == errno.EDQUOT:
        return f"disk quota exceeded writing {where}: free some, or write elsewhere (--set run_dir=..., --out ...)", 1
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write {where}: {err.strerror}; make it writable, or write elsewhere "
                "(--set run_dir=..., --out ...)"), 1
    if err.errno == errno.EISDIR:
        return f"{where} is a folder where a file was expected: give a file path", 2
    return None


def _run_dir(args) -> str:
    """The command's run directory, to say where a write without a file name (ENOSPC from write()) went."""
    try:
        from artcap_lib.cli.options import profile_from_args
        return str(profile_from_args(args)[1].root)
    except Exception:    # a hint only: a profile that does not load has been reported already
        return "the run directory"
