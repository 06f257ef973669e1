"""The measurements behind docs/SCALE.md: cache bytes per photo, what float16 features cost in
reconstruction error, extraction throughput (one process, and Dask with 1 and 2 workers) and
training images per second, on this machine.

    python bench/bench_scale.py [--photos 24] [--data DIR] [--skip-dask] [--only bytes,float16,extraction,training]

Each part prints a Markdown table. Bytes are measured on real shards (256x256 photos, no flips,
no crops) and divided by the photos; ImageNet totals multiply by 1,281,167 training photos.
"""
import argparse
import glob
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from models.networks import decoders  # noqa: E402
from models.data.extract import build_cache  # noqa: E402
from models.data.encoders import Encoder  # noqa: E402

IMAGENET = 1_281_167
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))


def shard_bytes(folder):
    return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder) if n.startswith("shard-"))


def bytes_per_photo(photos, work):
    """Rows: representation, storage, bytes per photo (features + 256x256 target), ImageNet total."""
    print("| representation | storage | features per photo | with its target image | ImageNet (1.28 M photos) |")
    print("|---|---|---|---|---|")
    target = 256 * 256 * 3
    for name in ("hog", "sift", "lbp"):
        dense = 4 * int(np.prod(decoders.feature_shape(name, 256)))
        print(f"| {name} | dense float32 (before) | {dense / 1e3:.0f} KB | {(dense + target) / 1e3:.0f} KB | "
              f"{(dense + target) * IMAGENET / 1e12:.2f} TB |")
        for dtype in ("float32", "float16"):
            folder = os.path.join(work, f"{name}-{dtype}")
            build_cache(folder, photos, Encoder(name, 256, workers=1), feature_dtype=dtype)
            stored = shard_bytes(folder) / len(photos)
            storage = decoders.representation(name).storage
            print(f"| {name} | {storage} {dtype} (measured) | {(stored - target) / 1e3:.0f} KB | {stored / 1e3:.0f} KB "
                  f"| {stored * IMAGENET / 1e12:.2f} TB |")
    for name in ("conv1", "conv5", "fc6", "fc8"):
        dense = 4 * int(np.prod(decoders.feature_shape(name)))
        out = decoders.output_size(name) ** 2 * 3
        print(f"| {name} | dense float32 (computed) | {dense / 1e3:.0f} KB | {(dense + out) / 1e3:.0f} KB | "
              f"{(dense + out) * IMAGENET / 1e12:.2f} TB |")


def float16_cost(photos):
    """The shipped decoders on float32 and on float16-rounded features of the same photos."""
    from models.scoring.metrics import normalized_error
    from models.evaluation.inference import load_decoder
    print("| decoder | photos | error, float32 features | error, float16 features | difference |")
    print("|---|---|---|---|---|")
    from models.data.images import center_square, read_image
    for name in ("hog", "sift", "lbp"):
        trained = load_decoder(feature=name)
        size = trained.config["image_size"]
        batch = np.stack([center_square(read_image(p), size) for p in photos])
        features = trained.encoder.features(batch)
        targets = trained.encoder.targets(batch).astype(np.float64)
        full = normalized_error(targets, trained.decode(features))
        half = normalized_error(targets, trained.decode(features.astype(np.float16).astype(np.float32)))
        print(f"| {name} ({size} px) | {len(photos)} | {full:.5f} | {half:.5f} | {half - full:+.5f} |")


def extraction(photos, work, skip_dask):
    """Photos per second building a cache: in this process (one BLAS thread, as a Dask worker
    has), and on a local Dask cluster of 1 and 2 worker processes (started before the clock)."""
    import models.data.cache as cache_module
    from nn.process import set_blas_threads
    set_blas_threads(1)
    cache_module.SHARD_BYTES = 4 << 20  # several shards, so that two workers share the work
    print("| representation | engine | workers | photos | seconds | photos/s | photos/s per worker |")
    print("|---|---|---|---|---|---|---|")
    engines = [("in-process", 1)] + ([] if skip_dask else [("dask local", 1), ("dask local", 2)])
    for engine, workers in engines:
        cluster = client = None
        if engine != "in-process":
            from distributed import Client, LocalCluster
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        for name in ("hog", "sift"):
            folder = os.path.join(work, f"x-{name}-{engine.replace(' ', '')}-{workers}")
            start = time.perf_counter()
            build_cache(folder, photos, Encoder(name, 256, workers=1),
                        scheduler=cluster.scheduler_address if cluster else None)
            seconds = time.perf_counter() - start
            print(f"| {name} | {engine} | {workers} | {len(photos)} | {seconds:.1f} | {len(photos) / seconds:.2f} | "
                  f"{len(photos) / seconds / workers:.2f} |")
        if cluster:
            client.close()
            cluster.close()


def training_rate(work, photos):
    """Images per second of one training process at the paper's full width (256 px, batch 8)."""
    from models.training.train import TrainConfig, train
    print("| decoder | width | batch | steps | images/s (one process, one BLAS thread) |")
    print("|---|---|---|---|---|")
    folder = os.path.join(work, "photos")
    os.makedirs(folder, exist_ok=True)
    for path in photos:
        target = os.path.join(folder, os.path.basename(path))
        if not os.path.exists(target):
            os.symlink(path, target)
    for name in ("hog", "sift"):
        config = TrainConfig(feature=name, data=folder, out=os.path.join(work, f"run-{name}"), preset="paper",
                             iters=6, batch_size=8, val_every=1000, checkpoint_every=1000, workers=2, threads=1)
        summary = train(config, log=lambda *_: None)
        import csv
        with open(os.path.join(work, f"run-{name}", "log.csv")) as f:
            rows = list(csv.DictReader(f))
        rate = float(rows[-1]["images_per_s"])
        print(f"| {name} | 1 | 8 | {summary['steps']} | {rate:.1f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--data", help="folder of photos to measure on (default: the bundled ones)")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--only", default="bytes,float16,extraction,training")
    args = parser.parse_args()
    photos = (sorted(glob.glob(os.path.join(args.data, "*.jpg"))) if args.data else SAMPLES)[:args.photos]
    parts = args.only.split(",")
    with tempfile.TemporaryDirectory() as work:
        if "bytes" in parts:
            bytes_per_photo(photos, work)
        if "float16" in parts:
            print()
            float16_cost(SAMPLES)
        if "extraction" in parts:
            print()
            extraction(photos, work, args.skip_dask)
        if "training" in parts:
            print()
            training_rate(work, photos)


if __name__ == "__main__":
    main()
