"""The one exception type users see as a one-line error from the CLI, and the wording of OS errors."""

from __future__ import annotations

import errno

_FIXES = {
    errno.EACCES: "it is not writable/readable by you; choose another path or fix its permissions",
    errno.EPERM: "it is not writable/readable by you; choose another path or fix its permissions",
    errno.EROFS: "the file system is read-only; choose another output path",
    errno.ENOTDIR: "a file is in the way where a folder is expected; choose another path",
    errno.EISDIR: "it is a folder where a file is expected; give a file name",
    errno.ENOENT: "it (or its folder) does not exist; create the folder or choose another path",
    errno.EEXIST: "something is already there; choose another path",
    errno.ENOSPC: "the disk is full; free space or choose another output path",
    errno.EDQUOT: "the disk quota is exceeded; free space or choose another output path",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
    errno.ELOOP: "it is a symlink loop; fix the link or choose another path",
}


class EdgeFerError(Exception):
    """A user-facing error: its message names the file involved and the fix."""


def describe_os_error(e: OSError) -> str:
    """One line for an OSError: the path it hit, what went wrong and the fix (never a traceback)."""
    path = e.filename if e.filename is not None else "?"
    target = f" -> {e.filename2}" if e.filename2 is not None else ""
    reason = e.strerror or str(e)
    fix = _FIXES.get(e.errno or -1, "check the path and try again")
    return f"{path}{target}: {reason}; {fix}"
