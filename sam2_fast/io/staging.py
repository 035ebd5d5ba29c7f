"""Outputs written all at once: a hidden staging folder next to the output folder that is moved
into place only when a run succeeded, and checks that an output file can be written.

Used by the command line (``sam2-fast video`` / ``image``); raises :class:`OutputError` (a
ValueError) with a one-line message for an output that cannot be written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict


class OutputError(ValueError):
    """An output location that cannot be written (a file where a folder is needed, no
    permission, ...). The message names the path."""


class Staging:
    """A hidden folder next to the output folder collecting all outputs of one run; on
    :meth:`commit` its files move into the output folder (and extra targets such as the
    overlay move to their own paths); on :meth:`discard` everything is deleted.

    Raises OutputError when the output location cannot be created or written.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(f"cannot write to output directory {out_dir}: it is a file")
        parent = out_dir.absolute().parent
        probe = parent
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise OutputError(f"cannot write to output directory {out_dir}: {probe} is not a folder")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
        except OSError as e:
            raise OutputError(f"cannot write to output directory {out_dir}: {e.strerror or e}") from None
        self.extra: Dict[str, Path] = {}

    def path(self, name: str) -> Path:
        return self.dir / name

    def add_extra(self, target: Path) -> Path:
        """Stage a file whose final place is ``target`` (outside the output folder perhaps)."""
        name = f"_extra{len(self.extra)}{target.suffix}"
        self.extra[name] = target
        return self.dir / name

    def commit(self) -> None:
        extras = {self.dir / n: t for n, t in self.extra.items()}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for f in sorted(self.dir.iterdir()):
            if f in extras:
                continue
            os.replace(f, self.out_dir / f.name)
        for f, target in extras.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(f), str(target))
        shutil.rmtree(self.dir, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def check_output_file(path: Path, what: str) -> None:
    """Raise OutputError unless ``path`` could be written (not a folder, under a writable
    folder or one that can be created); ``what`` names it in the message."""
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder")
    parent = path.absolute().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise OutputError(f"cannot write {what} {path}: {probe} is not a writable folder")


__all__ = ["OutputError", "Staging", "check_output_file"]
