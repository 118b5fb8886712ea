"""Convert scikit-learn's bundled digits (offline, no download) into a
fedledger data folder: one PNG per digit and a CSV naming it.

    python examples/digits/convert.py [--out DIR] [--limit N]

writes DIR/digits.csv (columns image, ink, digit) and DIR/img/*.png; check
it with ``fedledger node schema check --schema examples/digits/schema.toml
--file DIR/digits.csv``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def convert(out: Path, limit: int | None = None) -> Path:
    d = load_digits()
    out.mkdir(parents=True, exist_ok=True)
    (out / "img").mkdir(exist_ok=True)
    n = len(d.target) if limit is None else min(limit, len(d.target))
    path = out / "digits.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "ink", "digit"])
        for i in range(n):
            px = (d.images[i] / 16.0 * 255).round().astype(np.uint8)
            Image.fromarray(px, mode="L").save(out / "img" / f"{i}.png")
            w.writerow([f"img/{i}.png", f"{d.images[i].sum() / 16.0:.3f}", int(d.target[i])])
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("examples/digits/data"))
    ap.add_argument("--limit", type=int, default=None, help="only the first N digits")
    a = ap.parse_args()
    print(convert(a.out, a.limit))


if __name__ == "__main__":
    main()
