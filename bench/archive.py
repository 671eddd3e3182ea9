"""Archive speed and size against `tar czf` of the same tub, measured in the same run.

Goal (issue 2): archiving a 13,000-record tub of 160x120 images, validation included, at
least 3x faster than `tar czf`, and no larger. Run: `.venv/bin/python bench/archive.py
[--records N] [--repeat K]`. The tub is written once into a temporary folder; each figure
is the best of K runs with the page cache warm for both tools.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from training.donkeycar.archive import create_archive
from training.donkeycar.sample_tub import write_sample_tub


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=13000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tub = write_sample_tub(root / "data", records=args.records)
        images = sum(p.stat().st_size for p in (tub / "images").iterdir())
        ours, theirs = root / "data.tar.zst", root / "data.tar.gz"
        t_tar = best_of(
            args.repeat,
            lambda: subprocess.run(
                ["tar", "czf", str(theirs), "-C", str(root), "data"], check=True
            ),
        )
        t_ours = best_of(args.repeat, lambda: create_archive([tub], ours))
        size_tar, size_ours = theirs.stat().st_size, ours.stat().st_size
    each_kb = images / args.records / 1e3
    print(f"tub: {args.records} records, {images / 1e6:.1f} MB of JPEG ({each_kb:.1f} kB each)")
    print(f"tar czf:                      {t_tar:7.3f} s  {size_tar / 1e6:8.2f} MB")
    print(f"trackday (validate + pack):   {t_ours:7.3f} s  {size_ours / 1e6:8.2f} MB")
    print(f"speed-up vs tar czf: {t_tar / t_ours:.2f}x (goal >= 3x)")
    print(f"size vs tar czf:     {size_ours / size_tar:.4f} (goal <= 1.0)")


if __name__ == "__main__":
    main()
