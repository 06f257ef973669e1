"""Feature extraction on a Dask cluster (dask.distributed): one task per missing cache shard.

    python cli.py train sift --scheduler local             # a local cluster: a worker process per core
    python cli.py train sift --scheduler tcp://HOST:8786   # a running cluster (dask scheduler / dask worker)

Each task builds one shard of the cache (:func:`models.cache.build_shard`) and writes it atomically
into the cache folder, so the workers must see the photos and the cache folder at the same paths
(a shared file system), and have featinv installed (``pip install -e '.[cluster]'``). The scheduler
re-runs the task of a worker that dies, on another worker; since a shard appears only when it is
complete, and its content is a function of (seed, photo index) alone, a rerun can neither lose a
sample nor count one twice. Without ``--scheduler`` the shards are built in this process with a
local process pool (:func:`models.cache.build_cache`): nothing to install or start.

Dask is an optional dependency (the ``cluster`` extra).
"""
import os

import nn

from .cache import CacheError, build_shard

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
    from .encoders import Encoder
    if not _ENCODERS:  # the first task in this worker process
        # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, so every large NumPy
        # temporary is new, zeroed pages: SIFT ran 2.4x slower in a worker than in a plain process.
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
