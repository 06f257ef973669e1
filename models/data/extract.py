"""Feature extraction into a cache (:func:`build_cache`): its missing shards built here, one after the
other, or on a Dask cluster (dask.distributed), one task per shard.

    python cli.py train sift --scheduler local             # a local cluster: a worker process per core
    python cli.py train sift --scheduler tcp://HOST:8786   # a running cluster (dask scheduler / dask worker)

Each task builds one shard of the cache (:func:`models.data.cache.build_shard`) and writes it atomically
into the cache folder, so the workers must see the photos and the cache folder at the same paths
(a shared file system), and have featinv installed (``pip install -e '.[cluster]'``). The scheduler
re-runs the task of a worker that dies, on another worker; since a shard appears only when it is
complete, and its content is a function of (seed, photo index) alone, a rerun can neither lose a
sample nor count one twice. Without ``--scheduler`` the shards are built in this process with a
local process pool (:func:`build_cache`): nothing to install or start.

Dask is an optional dependency (the ``cluster`` extra).
"""
import os

import nn

from .cache import CacheError, build_shard, disk_error, finish, plan_cache, prepare_folder
from .encoders import Encoder

_ENCODERS = {}  # per worker process: the encoders built so far, by their description


def require_dask():
    try:
        import dask.distributed
    except ImportError:
        raise CacheError("--scheduler needs Dask: pip install -e '.[cluster]' (or pip install 'dask[distributed]')") \
            from None
    return dask.distributed


def encoder_spec(encoder):
    """What a worker needs to build its own copy of ``encoder`` (a network is not shipped)."""
    return encoder.name, encoder.image_size, encoder.weights


def run_shard_task(job, spec):
    """The task run on a worker: build the shard of ``job``; returns (its index, files in it)."""
    if not _ENCODERS:  # the first task in this worker process
        # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, so every large NumPy
        # temporary is new, zeroed pages (nn/process.py explains the cost); keep freed blocks instead.
        nn.process.keep_freed_memory()
    if spec not in _ENCODERS:
        name, image_size, weights = spec
        _ENCODERS[spec] = Encoder(name, image_size, weights, workers=1)
    build_shard(job, _ENCODERS[spec])
    return job.index, len(job.files)


def connect(scheduler, workers=None):
    """A Dask client: ``scheduler`` "local" starts a local cluster of ``workers`` processes (default:
    one per core, one thread each); anything else is a scheduler address."""
    distributed = require_dask()
    if scheduler == "local":
        cluster = distributed.LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        return distributed.Client(cluster), cluster
    try:
        return distributed.Client(scheduler, timeout="30s"), None
    except OSError as exc:
        raise CacheError(f"--scheduler {scheduler}: no Dask scheduler answers there ({exc}); start one with "
                         "'dask scheduler' and workers with 'dask worker ADDRESS', or pass --scheduler local") from None


def build_shards_on_dask(plan, encoder, scheduler, progress=None, client=None):
    """Build every missing shard of ``plan`` on the Dask cluster ``scheduler`` (or ``client``),
    calling ``progress(files done, files)`` as shards complete."""
    distributed = require_dask()
    own = client is None
    cluster = None
    if own:
        client, cluster = connect(scheduler, encoder.workers)
    try:
        missing = plan.missing()
        done = plan.files_done(missing)
        spec = encoder_spec(encoder)
        futures = [client.submit(run_shard_task, plan.job(index), spec, key=f"featinv-shard-{plan.digest[:12]}-{index}",
                                 pure=False) for index in missing]
        for future in distributed.as_completed(futures):
            _, files = future.result()
            done += files
            if progress:
                progress(done, len(plan.files))
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()


def build_cache(path, files, encoder, flip=False, progress=None, keep_photos=False, crops=0, seed=0,
                min_scale=0.5, colour_jitter=0.0, scheduler=None, feature_dtype="float32"):
    """Compute ``encoder``'s features and targets for ``files`` into the cache folder ``path``
    (and keep the photos themselves with ``keep_photos``).

    Samples per photo: with ``crops`` = 0, the centre square (and with ``flip`` its mirror image as
    a second sample); with ``crops`` = K > 0, a pool of K random crops of the full-resolution photo
    (:func:`models.data.images.random_crops`: sides from ``min_scale`` to 1 of the short side, each
    mirrored with probability 1/2 if ``flip``, colours jittered by ``colour_jitter``), drawn from a
    generator seeded by (``seed``, the photo's index in ``files``), so the pool is the same
    whenever and wherever it is built. Features are stored as ``feature_dtype`` (float16 halves
    the cache; docs/SCALE.md measures what it costs), densely or, for SIFT, as the filled cells.

    Shards are built here, one after the other (``encoder`` may use a process pool), or with
    ``scheduler`` ("local" or a Dask scheduler's address) on a Dask cluster (:func:`build_shards_on_dask`).
    ``progress(files done, files)`` is called as the build goes. Returns the cache's summary dict
    (``samples``, ``photos``, ``skipped``). Unusable photos are skipped with a warning and listed.
    Safe to call again: a complete, current cache is reused as it is.
    """
    plan = plan_cache(path, files, encoder, flip, keep_photos, crops, seed, min_scale, colour_jitter, feature_dtype)
    prepare_folder(plan)
    try:
        if scheduler:
            build_shards_on_dask(plan, encoder, scheduler, progress)
        else:
            missing = plan.missing()
            done = plan.files_done(missing)
            for index in missing:
                job = plan.job(index)

                def step(count, done=done):
                    if progress:
                        progress(done + count, len(plan.files))
                build_shard(job, encoder, step)
                done += len(job.files)
    except OSError as exc:
        raise disk_error(exc, plan.folder) from None
    return finish(plan)
