"""Writing output files: the whole file or nothing, so a failing command never leaves a half
file and an existing file is untouched until the new one is complete.

The target must be a new file or an existing regular file that is not one of the command's
inputs: a spec is never overwritten by its own compiled output, and a FIFO, a device (as
root, `-o /dev/null` would replace the device node), a directory or a symbolic link is
refused rather than replaced. The temporary file is removed on every exit that Python sees
(errors, Ctrl-C, SIGTERM); only SIGKILL, which no process can catch, can leave one behind
(`.archspec-*.tmp` next to the target)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator


class OutputRefused(OSError):
    """The target may not be written; `strerror` says why. An OSError, so every command's
    `cannot write` handling reports it."""

    def __init__(self, path: str, reason: str):
        super().__init__(errno.EEXIST, reason, path)


def write_atomic(path: str, data: str | bytes, inputs: Iterable[str] = ()) -> None:
    """A temporary file in the same folder, then one rename over the target (after
    `check_target`)."""
    check_target(path, inputs)
    folder = os.path.dirname(os.path.abspath(path))
    with _sigterm_raises():
        handle, temporary = tempfile.mkstemp(prefix=".archspec-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data.encode("utf-8") if isinstance(data, str) else data)
            os.chmod(temporary, _mode_for(path))
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def check_target(path: str, inputs: Iterable[str] = ()) -> None:
    """Raise OutputRefused unless `path` is new or a regular file that is none of `inputs`."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        return  # writing will say why (e.g. a folder that does not exist)
    if stat.S_ISLNK(info.st_mode):
        raise OutputRefused(path, "it is a symbolic link, and archspec does not write "
                                  "through links: give the path of the file itself")
    if not stat.S_ISREG(info.st_mode):
        raise OutputRefused(path, f"it is {_kind(info.st_mode)}, not a regular file; "
                                  "give a file name")
    for source in inputs:
        if _same_file(path, source):
            raise OutputRefused(path, f"this command reads it (the spec or a file it imports: "
                                      f"{source}); choose another output file")


def _same_file(one: str, other: str) -> bool:
    try:
        return os.path.samefile(one, other)
    except (OSError, ValueError):
        return False


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "a special file"


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While writing, SIGTERM raises SystemExit (exit status 143) instead of ending the
    process at once, so the temporary file is removed. Only where Python's default is in
    place and only in the main thread (where handlers can be set); restored afterwards."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return
    signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _terminated(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def _mode_for(path: str) -> int:
    """An existing file's permissions, or what a plain open() would give a new one."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask
