"""Mutation fuzzing of every kind of file featinv reads (run by tests/cli/test_fuzz.py, in a child process
with a memory limit).

    python tests/reference/fuzz_files.py KIND SEED_FILE WORK_DIR [--cases 200] [--seed 0] [--memory-mb 2048] [--bit-flips]

Each case mutates the seed file (random byte flips, a truncation, a run of random bytes spliced
in, or a duplicated block; for HDF5 files every other case instead changes the structure of a
valid file: an object deleted, a dataset of another shape or dtype, an attribute of garbage),
writes it, and hands it to the loader a user's command would call. ``--bit-flips``: each case flips
one bit of the seed instead, and HDF5 is made to fail the case if it opens the damaged file (a
sealed file is verified before it is parsed).
A case ends as ``ok`` (loaded), ``clean`` (one of the errors the CLI prints as one line: a
``nn.errors.UserError``, or an OSError about the file, ``nn.errors.is_user_error``), ``traceback``
(any other exception, a plain ValueError or RuntimeError included: a bug a user would see) or
``slow`` (over the time budget). Prints one JSON
line: the counts and the first examples of each bad outcome.
"""
import argparse
import json
import os
import resource
import shutil
import sys
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

BUDGET_S = 10.0


def mutate(data, rng):
    data = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:  # flip 1..16 random bytes
        for i in rng.integers(0, len(data), rng.integers(1, 17)):
            data[i] = rng.integers(256)
    elif kind == 1:  # truncate
        data = data[:rng.integers(0, len(data))]
    elif kind == 2:  # splice in random bytes
        at = rng.integers(0, len(data))
        data[at:at] = rng.integers(0, 256, rng.integers(1, 64)).astype(np.uint8).tobytes()
    else:  # duplicate a block somewhere else
        a, b = sorted(rng.integers(0, len(data), 2))
        at = rng.integers(0, len(data))
        data[at:at] = data[a:b][:4096]
    return bytes(data)


def mutate_structure(path, rng):
    """For HDF5 files: a valid file with wrong content (what a hand-made hostile file looks like):
    an object deleted, a dataset replaced by one of another shape or dtype, or a root attribute
    removed or replaced by garbage."""
    import h5py
    from nn.serialization import seal_file
    with h5py.File(path, "a") as f:
        datasets, attrs = [], list(f.attrs)
        f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
        kind = rng.integers(3)
        if kind == 0 and datasets:
            del f[datasets[rng.integers(len(datasets))]]
        elif kind == 1 and datasets:
            name = datasets[rng.integers(len(datasets))]
            del f[name]
            shape = tuple(int(d) for d in rng.integers(0, 5, rng.integers(0, 4)))
            dtype = [np.int8, np.float64, np.uint16, "S3", np.complex64][rng.integers(5)]
            f.create_dataset(name, data=np.zeros(shape, dtype=dtype))
        elif attrs:
            name = attrs[rng.integers(len(attrs))]
            choice = rng.integers(4)
            if choice == 0:
                del f.attrs[name]
            else:
                f.attrs[name] = ["{not json", "[1, 2]", 7, '{"feature": 3}'][choice]
    if rng.random() < 0.7:
        seal_file(path)  # a hand-made file sealed by its maker: test what lies behind the seal


def loader(kind, work):
    if kind == "photo":
        from models.data.images import read_image
        return read_image
    if kind == "checkpoint":
        from models.evaluation.inference import TrainedDecoder
        return lambda path: TrainedDecoder(path, workers=1)
    if kind == "decoder":
        from models.evaluation.inference import load_decoder
        return load_decoder
    if kind in ("cache", "cache_sparse"):  # the case is the one shard of a cache folder (its manifest beside it)
        from models.data.cache import FeatureCache

        def read(path):
            cache = FeatureCache(os.path.dirname(path))
            try:
                return cache.batch(np.arange(min(3, len(cache))))
            finally:
                cache.close()
        return read
    if kind in ("caffemodel", "pth", "onnx"):
        import weights_import
        return lambda path: weights_import.import_weights(path, out=os.path.join(work, "out.h5"))
    raise ValueError(f"unknown kind {kind}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("seed_file")
    parser.add_argument("work")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument("--bit-flips", action="store_true")
    args = parser.parse_args()
    limit = args.memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import warnings
    from nn.errors import is_user_error
    warnings.simplefilter("ignore")
    load = loader(args.kind, args.work)
    seed = open(args.seed_file, "rb").read()
    rng = np.random.default_rng(args.seed)
    counts = {"ok": 0, "clean": 0, "traceback": 0, "slow": 0}
    examples = {"traceback": [], "slow": []}
    suffix = os.path.splitext(args.seed_file)[1]
    folder = args.work
    is_cache = args.kind in ("cache", "cache_sparse")
    if is_cache:
        folder = os.path.join(args.work, "cache")
        os.makedirs(folder, exist_ok=True)
        shutil.copy(os.path.join(os.path.dirname(args.seed_file), "manifest.json"), folder)
    if args.bit_flips:
        import h5py

        def parsed(*_, **__):
            raise AssertionError("HDF5 opened a damaged file before its seal was checked")
        h5py.File = parsed
    for case in range(args.cases):
        path = os.path.join(folder, "shard-00000.h5" if is_cache else f"case{suffix}")
        structural = suffix == ".h5" and case % 2 == 1 and not args.bit_flips
        if args.bit_flips:
            data = bytearray(seed)
            bit = int(rng.integers(8 * len(data)))
            data[bit // 8] ^= 1 << (bit % 8)
        with open(path, "wb") as f:
            f.write(seed if structural else bytes(data) if args.bit_flips else mutate(seed, rng))
        if structural:
            mutate_structure(path, rng)
        start = time.time()
        try:
            load(path)
            outcome = "ok"
        except Exception as exc:  # noqa: BLE001 - what the fuzzing is looking for
            outcome = "clean" if is_user_error(exc) else "traceback"
            if outcome == "traceback" and len(examples["traceback"]) < 5:
                examples["traceback"].append(f"case {case}: {type(exc).__name__}: {str(exc)[:200]} at "
                                             f"{traceback.extract_tb(exc.__traceback__)[-1][:3]}")
        if time.time() - start > BUDGET_S:
            outcome = "slow"
            examples["slow"].append(f"case {case}: {time.time() - start:.1f} s")
        counts[outcome] += 1
    print(json.dumps({"kind": args.kind, "counts": counts, "examples": examples}))


if __name__ == "__main__":
    main()
