"""Feature extraction on a local multi-process Dask cluster (models/data/extract.py): the same cache as a
build in one process, also when a worker is killed in the middle of the build."""
import glob
import os
import signal
import threading
import time

import numpy as np
import pytest

import models.data.cache as cache_module
from models.data.cache import FeatureCache, read_manifest
from models.data.extract import build_cache
from models.data.encoders import Encoder

distributed = pytest.importorskip("distributed", reason="Dask is the cluster extra: pip install -e '.[cluster]'")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))
PHOTOS_PER_SHARD = 3


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes (each restarted by its nanny if it dies)."""
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(local)
    yield client
    client.close()
    local.close()


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of PHOTOS_PER_SHARD photos for SIFT at 128 px (the plan travels to the workers with it)."""
    sample_bytes = 4 * 133 * 32 * 32 + 3 * 128 * 128
    monkeypatch.setattr(cache_module, "SHARD_BYTES", 2 * PHOTOS_PER_SHARD * sample_bytes)  # two samples per photo (flip)


def rows(path):
    cache = FeatureCache(path)
    try:
        return cache.files, cache.rows("features", np.arange(len(cache))), cache.rows("targets", np.arange(len(cache)))
    finally:
        cache.close()


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The reference: the same cache built in this process."""
    path = str(tmp_path_factory.mktemp("serial") / "cache")
    mp = pytest.MonkeyPatch()
    mp.setattr(cache_module, "SHARD_BYTES", 2 * PHOTOS_PER_SHARD * (4 * 133 * 32 * 32 + 3 * 128 * 128))
    build_cache(path, SAMPLES[:12], Encoder("sift", 128, workers=1), flip=True)
    mp.undo()
    return rows(path)


def test_a_dask_build_equals_the_serial_one(cluster, serial, small_shards, tmp_path):
    path = str(tmp_path / "cache")
    seen = []
    info = build_cache(path, SAMPLES[:12], Encoder("sift", 128, workers=1), flip=True,
                       scheduler=cluster.scheduler.address, progress=lambda done, total: seen.append(done))
    assert info["samples"] == 24 and sorted(seen) == seen and seen[-1] == 12
    assert read_manifest(path)["samples"] == [6, 6, 6, 6]
    for ours, reference in zip(rows(path), serial):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(reference))


def test_a_worker_killed_mid_build_loses_and_doubles_nothing(cluster, serial, small_shards, tmp_path):
    """kill -9 of a worker process while shards are being built: the scheduler reruns its task on
    the other worker; every shard is there once, and the cache equals the serial build."""
    path = str(tmp_path / "cache")
    killed = []

    def kill_a_busy_worker():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            busy = [w for w, tasks in cluster.processing().items() if tasks]
            if busy:
                pid = cluster.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    info = build_cache(path, SAMPLES[:12], Encoder("sift", 128, workers=1), flip=True,
                       scheduler=cluster.scheduler.address)
    killer.join()
    assert killed, "no worker was busy to be killed"
    assert info["samples"] == 24
    assert sorted(n for n in os.listdir(path) if n.startswith("shard-")) == [f"shard-0000{i}.h5" for i in range(4)]
    assert not [n for n in os.listdir(path) if n.startswith(".tmp-")]  # a killed writer's half file is removed
    for ours, reference in zip(rows(path), serial):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(reference))


def test_no_scheduler_at_the_address_is_one_clear_error(tmp_path):
    from models.data.cache import CacheError
    with pytest.raises(CacheError, match="no Dask scheduler answers"):
        build_cache(str(tmp_path / "cache"), SAMPLES[:2], Encoder("hog", 64, workers=1), scheduler="tcp://127.0.0.1:9")
