"""Outputs written all at once: a hidden staging folder next to the output folder that becomes
the output folder only when a run succeeded, and checks that an output file can be written.

Used by the command line (``sam2-fast video`` / ``image``):

* The staging folder is ``.<out>.partial-<pid>-<random>`` beside ``<out>``. A run that is
  killed (``kill -9``, a power cut) leaves it behind; the next run into the same ``<out>`` finds
  it, sees that process ``<pid>`` is gone and removes it (:attr:`Staging.removed_stale` lists
  what it removed, for the caller to report). A partial folder whose process is still running
  means another run is writing the same output: :class:`OutputError`.
* An existing non-empty ``<out>`` is refused unless ``overwrite=True``; then the finished staging
  folder replaces it in one step (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere the old
  folder is first renamed to ``.<out>.old-<pid>-<random>``, which a later run restores or
  removes if this one dies in between), so a reader sees either the old outputs or the new
  ones, never a mix.

Raises :class:`OutputError` (a ValueError) with a one-line message for an output that cannot be
written.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional


class OutputError(ValueError):
    """An output location that cannot be written (a file where a folder is needed, no
    permission, an existing output without overwrite ...). The message names the path."""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False when the system
    or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class Staging:
    """A hidden folder next to the output folder collecting all outputs of one run; on
    :meth:`commit` it becomes the output folder (and extra files such as an overlay outside it
    move to their own paths); on :meth:`discard` everything is deleted. As a context manager,
    leaving the block without :meth:`commit` discards::

        with Staging(out_dir) as staging:
            ...write into staging.path(name)...
            staging.commit()

    Args:
        out_dir: the output folder.
        overwrite: replace an existing non-empty ``out_dir`` (and existing extra files).

    Attributes:
        committed: :meth:`commit` has succeeded.
        removed_stale: partial folders of earlier, killed runs into the same output that were
            removed (or old folders restored) while starting this one.

    Raises:
        OutputError: the output location cannot be created or written, ``out_dir`` exists and
            is not empty without ``overwrite``, or another live run writes to it.
    """

    def __init__(self, out_dir: Path, overwrite: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.overwrite = overwrite
        self.committed = False
        self.removed_stale: List[Path] = []
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise OutputError(f"cannot write to output directory {out}: it is a file")
        parent = out.absolute().parent
        probe = parent
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise OutputError(f"cannot write to output directory {out}: {probe} is not a folder")
        if parent.is_dir():
            self._clean_stale(parent)
        if out.is_dir() and any(out.iterdir()) and not overwrite:
            raise OutputError(f"output directory {out} exists and is not empty: pass --overwrite to "
                              f"replace it, or choose another --out")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=parent))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.dir, 0o777 & ~umask)  # mkdtemp makes it 0700; the output folder should not be
        except OSError as e:
            raise OutputError(f"cannot write to output directory {out}: {e.strerror or e}") from None
        self.extra: Dict[Path, Path] = {}

    def _clean_stale(self, parent: Path) -> None:
        pat = re.compile(r"^\." + re.escape(self.out_dir.name) + r"\.(partial|old)-(?:(\d+)-)?[^/]*$")
        for p in sorted(parent.iterdir()):
            m = pat.match(p.name)
            if not m or not p.is_dir():
                continue
            pid = int(m.group(2)) if m.group(2) else None
            if pid is not None and _pid_alive(pid):
                raise OutputError(f"another run (process {pid}) is writing {self.out_dir} (its partial "
                                  f"folder {p} exists); wait for it, or delete {p} if it is gone")
            if m.group(1) == "old" and not self.out_dir.exists():
                os.replace(p, self.out_dir)  # a replacement interrupted half-way: put the old one back
            else:
                shutil.rmtree(p, ignore_errors=True)
            self.removed_stale.append(p)

    def path(self, name: str) -> Path:
        """Where to write the output file ``name`` (relative to the output folder)."""
        p = self.dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def add_extra(self, target: Path) -> Path:
        """Where to write a file whose final place is ``target``: inside the staging folder when
        ``target`` lies inside the output folder, else a staged file moved to ``target`` on
        commit. Raises OutputError when ``target`` exists outside the output folder and
        overwrite is off."""
        target = Path(target)
        try:
            rel = target.absolute().relative_to(self.out_dir.absolute())
        except ValueError:
            rel = None
        if rel is not None and str(rel) not in ("", "."):
            return self.path(str(rel))
        if target.exists() and not self.overwrite:
            raise OutputError(f"{target} exists: pass --overwrite to replace it, or choose another name")
        staged = self.dir / f".extra{len(self.extra)}{target.suffix}"
        self.extra[staged] = target
        return staged

    def commit(self) -> None:
        """Make the staged outputs the real ones (see the module docstring for the atomicity).
        Raises OSError when the file system refuses."""
        self._commit()
        self.committed = True

    def _commit(self) -> None:
        for staged, target in self.extra.items():
            if not staged.exists():  # not produced (a run that stopped early): nothing to move
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
            shutil.move(str(staged), str(tmp))
            os.replace(tmp, target)
        out = self.out_dir
        if out.is_dir() and any(out.iterdir()):
            if _exchange(self.dir, out):
                shutil.rmtree(self.dir, ignore_errors=True)
                return
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.absolute().parent))
            os.replace(out, old)  # replaces the empty placeholder folder
            os.replace(self.dir, out)
            shutil.rmtree(old, ignore_errors=True)
            return
        os.replace(self.dir, out)  # no output yet, or an empty folder

    def discard(self) -> None:
        """Delete everything staged (nothing of this run is left behind)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Leaving the block without :meth:`commit` (an error, an interrupt, an early return)
        discards the staged outputs."""
        if not self.committed:
            self.discard()


def check_output_file(path: Path, what: str, overwrite: Optional[bool] = None) -> None:
    """Raise OutputError unless ``path`` could be written (not a folder, under a writable
    folder or one that can be created; with ``overwrite=False``, not an existing file);
    ``what`` names it in the message."""
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder")
    if overwrite is False and path.exists():
        raise OutputError(f"{what} {path} exists: pass --overwrite to replace it, or choose another name")
    parent = path.absolute().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise OutputError(f"cannot write {what} {path}: {probe} is not a writable folder")


__all__ = ["OutputError", "Staging", "check_output_file"]
