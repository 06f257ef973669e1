"""Rewrite the shipped decoder files with their baselines and the digests of their training photos.

    python bench/ship_baselines.py TRAIN HELDOUT [--features hog sift lbp] [--components 64] [--max-mib 12.25]

TRAIN and HELDOUT: the long recipe's split (``bench/make_shallow_split.py DEVDATA SPLIT --val 64``:
SPLIT/train and SPLIT/val; docs/results/README.md). For each feature the decoder file
``models/evaluation/pretrained/FEATURE.h5`` is read and written again through
:func:`models.evaluation.pretrained.write_decoder_file` with the same weights and settings, and

- ``training_photos``: the digest of every photo in TRAIN, so that ``eval`` recognises them;
- ``baselines/``: the mean image and the ridge regression fitted on TRAIN's photos (centre squares,
  the samples ``fit_baselines`` draws), the ridge projected onto its targets' top ``--components``
  principal components (halved until the file fits in ``--max-mib``; where not even one fits, the
  file carries none, and ``eval`` fits them on the bundled photos and says so). The script scores
  the full ridge and the stored (projected, float16) one on HELDOUT and prints both;
- ``held_out["photos"]``: the number of HELDOUT photos (a count, not a path of this machine).

Run it again whenever the decoder file format changes, so the shipped files are written by the
current writer.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models.data.cache import FeatureCache  # noqa: E402
from models.data.encoders import Encoder  # noqa: E402
from models.data.extract import build_cache  # noqa: E402
from models.data.images import center_square, find_images, read_image  # noqa: E402
from models.data.provenance import photo_digests  # noqa: E402
from models.evaluation import pretrained  # noqa: E402
from models.scoring.baselines import (baseline_arrays, baseline_errors,  # noqa: E402
                                      baselines_from_arrays)


def stored_bytes(weights, feature_shape, pixels, components):
    """The bytes of a decoder file's arrays in float16 with baselines of ``components`` components."""
    d = int(np.prod(feature_shape))
    return 2 * (sum(w.size for w in weights.values()) + pixels + components * (d + pixels) + pixels)


def held_out_set(encoder, folder):
    """(features, targets uint8) of the centre squares of the photos in ``folder``."""
    photos = np.stack([center_square(read_image(p), encoder.image_size) for p in find_images(folder)])
    return encoder.features(photos), encoder.targets(photos)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("train")
    parser.add_argument("held_out")
    parser.add_argument("--features", nargs="+", default=["hog", "sift", "lbp"])
    parser.add_argument("--components", type=int, default=pretrained.BASELINE_COMPONENTS)
    parser.add_argument("--max-mib", type=float, default=12.25)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    digests = list(photo_digests(find_images(args.train)))
    held_out_count = len(find_images(args.held_out))
    for feature in args.features:
        path = pretrained.shipped_decoder(feature)
        config, weights, attrs = pretrained.read_decoder_file(path)
        encoder = Encoder(feature, config["image_size"], workers=args.workers)
        pixels = 3 * encoder.output_size ** 2
        components = args.components  # halved until the file fits in --max-mib
        while components and stored_bytes(weights, config["feature_shape"], pixels, components) > args.max_mib * 2 ** 20:
            components //= 2
        baselines = None
        if not components:
            print(f"{feature}: baselines would take the file over {args.max_mib} MiB; stored without them")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                build_cache(os.path.join(tmp, "cache"), find_images(args.train), encoder)
                cache = FeatureCache(os.path.join(tmp, "cache"))
                try:
                    models, record, ridge = pretrained.training_baselines(cache, components)
                finally:
                    cache.close()
            x, y = held_out_set(encoder, args.held_out)
            full = baseline_errors({"ridge": ridge}, x, y)[0]["ridge"]
            stored = baseline_errors(baselines_from_arrays(baseline_arrays(models)), x, y)[0]
            print(f"{feature}: on {len(y)} held-out photos: mean image {stored['mean image']:.4f}, ridge "
                  f"{full:.4f} (full), {stored[ridge.name]:.4f} (stored: {components} component(s), float16)")
            baselines = (models, record)
        held_out = dict(attrs["held_out"], photos=held_out_count)
        pretrained.write_decoder_file(path, config, attrs["training"], held_out, weights, baselines, digests)
        print(f"wrote {path} ({os.path.getsize(path) / 2 ** 20:.1f} MiB)")


if __name__ == "__main__":
    main()
