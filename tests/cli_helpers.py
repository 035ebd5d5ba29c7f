"""Helpers shared by the CLI tests: what a bad-input run must look like."""

from __future__ import annotations

from pathlib import Path

from sam2_fast.cli import main


def entries(folder: Path):
    """The sorted names in ``folder``."""
    return sorted(x.name for x in folder.iterdir())


def assert_bad(capsys, argv, match, root: Path) -> None:
    """``sam2-fast argv``: exit 2, one line on stderr (warnings aside) that starts with
    ``sam2-fast: error:`` and contains ``match`` (case-insensitive), no traceback, and nothing
    written under ``root``."""
    before = entries(root)
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("sam2-fast: warning:")]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("sam2-fast: error: "), err
    assert "Traceback" not in err
    assert match.lower() in lines[0].lower(), lines[0]
    assert entries(root) == before, "bad input left files behind"
