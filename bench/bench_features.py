"""Time per 256x256 greyscale image of minifeat's HOG, LBP and SIFT against VLFeat's C (libvl).

Both run in this process, one image at a time, on the same sample photos: VLFeat through the
test-only ctypes drivers (``tests/reference/vlfeat_ref.py``, ``tests/reference/vlfeat_sift_ref.py``). Times are CPU
time of this process (``time.process_time``), so that other jobs on a shared machine distort them
less; the two implementations are timed alternately, and each figure is the best of several
repeats, averaged over the photos. VLFeat's SIFT time includes the ctypes loop over keypoints
that drives it (a C program would be a little faster).

    python bench/bench_features.py [--photos 5] [--repeats 5]
"""
import argparse
import glob
import os
import sys
import time
import timeit

import imageio.v3 as iio
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import minifeat  # noqa: E402
from minifeat.image import to_grey  # noqa: E402
from tests.reference.vlfeat_ref import LIBVL, SKIP_REASON, vl_hog_reference, vl_lbp_reference  # noqa: E402
from tests.reference.vlfeat_sift_ref import vl_sift_reference  # noqa: E402

FEATURES = {
    "hog": (lambda image: minifeat.hog(image, 8, 9, "uoctti"),
            lambda image: vl_hog_reference(image, 8, "uoctti")),
    "lbp": (lambda image: minifeat.lbp(image, 16), lambda image: vl_lbp_reference(image, 16)),
    "sift": (minifeat.sift, vl_sift_reference),
}
TARGET_RATIO = {"hog": 3.0, "lbp": 3.0, "sift": 5.0}


def best_seconds_per_call(functions, image, repeats):
    """For each function, the best of ``repeats`` CPU timings of one call on ``image``; the
    functions take turns so that they see the same conditions."""
    timers = [timeit.Timer(lambda f=function: f(image), timer=time.process_time)
              for function in functions]
    calls = [timer.autorange()[0] for timer in timers]
    best = [np.inf] * len(timers)
    for _ in range(repeats):
        for index, (timer, number) in enumerate(zip(timers, calls)):
            best[index] = min(best[index], timer.timeit(number) / number)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=5, help="sample photos to average over")
    parser.add_argument("--repeats", type=int, default=5, help="timings per photo (best kept)")
    args = parser.parse_args()
    if LIBVL is None:
        sys.exit(SKIP_REASON)
    paths = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))[:args.photos]
    images = [to_grey(iio.imread(path).astype(np.float32)) for path in paths]
    assert all(image.shape == (256, 256) for image in images)

    print(f"{len(images)} greyscale 256x256 photos from models/data/sample, CPU ms per image, "
          f"best of {args.repeats}")
    print(f"{'feature':8} {'minifeat ms':>12} {'VLFeat ms':>10} {'ratio':>7} {'target':>7}")
    for name, (ours, vlfeat) in FEATURES.items():
        ours_ms, vl_ms = 1e3 * np.mean([best_seconds_per_call((ours, vlfeat), image, args.repeats)
                                        for image in images], axis=0)
        ratio = ours_ms / vl_ms
        target = TARGET_RATIO[name]
        verdict = "ok" if ratio <= target else "SLOW"
        print(f"{name:8} {ours_ms:12.2f} {vl_ms:10.2f} {ratio:7.2f} {target:6.0f}x {verdict}")


if __name__ == "__main__":
    main()
