"""Locating and calling ffmpeg: the system binary when present, else the one inside imageio-ffmpeg.

    >>> from ground.common.media import ffmpeg_exe, media_duration
    >>> media_duration("resources/demo/media/videos/train_00000.mp4")
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path


class MediaError(ValueError):
    """A media file that ffmpeg cannot read; the message names the file."""


@functools.cache
def ffmpeg_exe() -> str:
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")


def media_duration(path: str | Path) -> float:
    """Container duration in seconds, read from ffmpeg's header dump (ffprobe may be absent)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such media file")
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
    )
    match = _DURATION.search(proc.stderr)
    if not match:
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"
        raise MediaError(f"{path}: not a readable media file ({reason})")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
