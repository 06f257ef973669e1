"""Development runs: split a photo collection into training and held-out folders of symbolic links.

    python bench/make_shallow_split.py SOURCE /tmp/featinv_split [--val 40] [--seed 0]

SOURCE holds ``train256/`` (256x256 photos, with ``manifest.csv``: ``filename``) and
``train256_tiles/`` (tiles cut from them, with ``manifest.csv``: ``filename``,
``parent_in_train256``); the development data of the results in docs/results is such a folder
(not shipped).

Held-out: ``--val`` originals of ``train256`` chosen by a seeded shuffle. Training: the other
``train256`` photos plus every tile of ``train256_tiles`` whose parent is not held out (tiles of
one original are correlated with it, so a held-out original's tiles must not be trained on).
"""
import argparse
import csv
import os

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source", help="folder with train256/ and train256_tiles/")
    parser.add_argument("out")
    parser.add_argument("--val", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(os.path.join(args.source, "train256", "manifest.csv")) as f:
        originals = sorted(row["filename"] for row in csv.DictReader(f))
    held_out = set(np.random.default_rng(args.seed).permutation(originals)[:args.val].tolist())
    with open(os.path.join(args.source, "train256_tiles", "manifest.csv")) as f:
        tiles = [(row["filename"], row["parent_in_train256"]) for row in csv.DictReader(f)]
    for split in ("train", "val"):
        os.makedirs(os.path.join(args.out, split), exist_ok=True)

    def link(folder, name, split):
        target = os.path.join(args.out, split, name)
        if not os.path.exists(target):
            os.symlink(os.path.abspath(os.path.join(args.source, folder, name)), target)

    for name in originals:
        link("train256", name, "val" if name in held_out else "train")
    kept = [name for name, parent in tiles if parent not in held_out]
    for name in kept:
        link("train256_tiles", name, "train")
    print(f"{args.out}: train {len(originals) - len(held_out) + len(kept)} photos "
          f"({len(kept)} tiles), val {len(held_out)} held-out originals")


if __name__ == "__main__":
    main()
