"""The data directory (databases, audit log, stored files) is the person's data: its owner only may read it."""
from __future__ import annotations

import os
import stat
from pathlib import Path

# Written at the top level and in audit/ by the app; images/ holds many files, its folder's 0700 is what protects them.
SHALLOW = ("", "audit", "localdev")


def protect_data_dir(data_dir: Path) -> None:
    """Creates `data_dir` 0700, and takes group and other permissions off what is already there (an older release,
    or a process started without the app's umask, created files 0644). Folders deeper down are 0700 as they are made
    (app.py sets umask 077); existing ones are tightened too."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for part in SHALLOW:
        folder = data_dir / part
        if not folder.is_dir():
            continue
        _tighten(folder, 0o700)
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                _tighten(Path(entry.path), 0o700)
            elif entry.is_file(follow_symlinks=False):
                _tighten(Path(entry.path), 0o600)


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            path.chmod(current & ~0o077 & 0o777 | (mode & 0o700))
    except OSError:  # not ours to change (a mounted volume): the umask still covers what we create
        pass
