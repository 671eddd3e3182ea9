"""Archives in the format users had before trackday: `tar czf` of one tub's contents."""

from __future__ import annotations

import tarfile
from pathlib import Path


def old_format_archive(tub: Path, dest: Path, *config_files: Path) -> Path:
    """One tub's contents at the archive root, plus config.py/myconfig.py beside them."""
    with tarfile.open(dest, "w:gz") as tar:
        for entry in tub.iterdir():
            tar.add(entry, arcname=entry.name)
        for config in config_files:
            tar.add(config, arcname=config.name)
    return dest
