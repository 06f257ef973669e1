"""The 100 held-out photos of the preset measurements in docs/results/README.md: the first N of a
seeded shuffle of the development photos (``SOURCE/train256``) that are not among the bundled ones
(``models/data/sample``), as symbolic links in OUT.

    python bench/make_heldout.py SOURCE /tmp/heldout [--count 100] [--seed 0]
"""
import argparse
import os

from make_shallow_split import held_out_names, link

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source", help="folder with train256/")
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = os.path.join(args.source, "train256")
    bundled = set(os.listdir(os.path.join(ROOT, "models", "data", "sample")))
    names = [n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg", ".png")) and n not in bundled]
    os.makedirs(args.out, exist_ok=True)
    for name in held_out_names(names, args.count, args.seed):
        link(os.path.join(folder, name), args.out)
    print(f"{args.out}: {min(args.count, len(names))} held-out photos of {len(names)} not bundled")


if __name__ == "__main__":
    main()
