"""The sample clip shipped with the package, so the first command runs on a fresh machine with
no data: 16 frames of the official SAM 2 "bedroom" video, every third frame of the first 48,
scaled to 480x270 JPEG (Apache-2.0; ``sam2_fast/data/bedroom/LICENSE`` and ``NOTICE``).
"""

from __future__ import annotations

from pathlib import Path

#: the folder of the sample clip's frames (``00000.jpg`` ... ``00015.jpg``, 480x270)
SAMPLE_VIDEO_DIR = Path(__file__).resolve().parent / "data" / "bedroom"

#: a click on the boy on frame 0 of the sample (x, y pixels): the official video notebook's
#: (210, 350) on the full-size frames
SAMPLE_POINT = (105, 175)


def sample_video() -> str:
    """Path of the sample clip's frame folder (a str, for ``init_state`` / ``sam2-fast video``).

    Raises:
        FileNotFoundError: the package was installed without its data files.
    """
    if not (SAMPLE_VIDEO_DIR / "00000.jpg").is_file():
        raise FileNotFoundError(f"the sample clip is missing from this install ({SAMPLE_VIDEO_DIR}); "
                                "reinstall sam2_fast")
    return str(SAMPLE_VIDEO_DIR)


__all__ = ["SAMPLE_POINT", "SAMPLE_VIDEO_DIR", "sample_video"]
