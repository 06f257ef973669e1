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


def held_out_names(names, count, seed):
    """The first ``count`` of a ``seed``-ed shuffle of ``names`` (sorted first, so the choice does
    not depend on the order they were listed in)."""
    return np.random.default_rng(seed).permutation(sorted(names))[:count].tolist()


def link(path, folder):
    """A symbolic link to the file ``path`` in ``folder``, under the same name (kept if there)."""
    target = os.path.join(folder, os.path.basename(path))
    if not os.path.exists(target):
        os.symlink(os.path.abspath(path), target)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source", help="folder with train256/ and train256_tiles/")
    parser.add_argument("out")
    parser.add_argument("--val", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(os.path.join(args.source, "train256", "manifest.csv")) as f:
        originals = sorted(row["filename"] for row in csv.DictReader(f))
    held_out = set(held_out_names(originals, args.val, args.seed))
    with open(os.path.join(args.source, "train256_tiles", "manifest.csv")) as f:
        tiles = [(row["filename"], row["parent_in_train256"]) for row in csv.DictReader(f)]
    for split in ("train", "val"):
        os.makedirs(os.path.join(args.out, split), exist_ok=True)

    for name in originals:
        split = "val" if name in held_out else "train"
        link(os.path.join(args.source, "train256", name), os.path.join(args.out, split))
    kept = [name for name, parent in tiles if parent not in held_out]
    for name in kept:
        link(os.path.join(args.source, "train256_tiles", name), os.path.join(args.out, "train"))
    print(f"{args.out}: train {len(originals) - len(held_out) + len(kept)} photos "
          f"({len(kept)} tiles), val {len(held_out)} held-out originals")


if __name__ == "__main__":
    main()
