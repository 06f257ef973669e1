"""The sharded feature cache (models/data/cache.py): built shard by shard, atomically, resumable,
checksummed; rows read across shards; a full disk is said as such and loses no finished shard."""
import glob
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import models.data.cache as cache_module
from models.data.cache import CacheError, FeatureCache, shard_path
from models.data.extract import build_cache
from models.data.encoders import Encoder
from nn.serialization import SEAL_BYTES, seal_file, verify_seal
from tests.conftest import small_disk

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))


HOG_64_SAMPLE_BYTES = 4 * 31 * 8 * 8 + 3 * 64 * 64  # a 64 px photo's HOG map and target image


def small_shards(monkeypatch, photos_per_shard=2):
    """Make shards of ``photos_per_shard`` photos of 64 px HOG (one sample each, no flip)."""
    monkeypatch.setattr(cache_module, "SHARD_BYTES", photos_per_shard * HOG_64_SAMPLE_BYTES)


def every_row(cache, name="features"):
    return cache.rows(name, np.arange(len(cache)))


def test_a_cache_is_a_folder_of_sealed_shards(tmp_path, monkeypatch):
    small_shards(monkeypatch)
    folder = tmp_path / "cache"
    info = build_cache(str(folder), SAMPLES[:5], Encoder("hog", 64, workers=1))
    assert info["samples"] == 5 and info["skipped"] == []
    assert sorted(os.listdir(folder)) == ["manifest.json", "shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    for index in range(3):
        with h5py.File(shard_path(str(folder), index), "r") as f:
            assert len(f["files"]) == (2 if index < 2 else 1)
        assert verify_seal(shard_path(str(folder), index))
    cache = FeatureCache(str(folder))
    assert len(cache) == 5 and cache.files == [os.path.abspath(p) for p in SAMPLES[:5]]
    assert cache.feature_shape == (31, 8, 8) and cache.target_shape == (64, 64, 3)
    cache.close()


def test_rows_across_shards_in_any_order_with_repeats(tmp_path, monkeypatch):
    small_shards(monkeypatch)
    build_cache(str(tmp_path / "one"), SAMPLES[:6], Encoder("lbp", 64, workers=1))
    monkeypatch.setattr(cache_module, "SHARD_BYTES", 1 << 30)
    build_cache(str(tmp_path / "whole"), SAMPLES[:6], Encoder("lbp", 64, workers=1))
    sharded, whole = FeatureCache(str(tmp_path / "one")), FeatureCache(str(tmp_path / "whole"))
    assert len(sharded.counts) == 3 and len(whole.counts) == 1
    every = every_row(whole)
    np.testing.assert_array_equal(every_row(sharded), every)
    indices = [4, 1, 2, 4, 0, 5, 3, 3]  # runs, gaps, repeats, unsorted, across shards
    np.testing.assert_array_equal(sharded.rows("features", indices), every[indices])
    np.testing.assert_array_equal(sharded.rows("targets", indices), every_row(whole, "targets")[indices])
    assert sharded.rows("features", []).shape == (0,) + every.shape[1:]
    with pytest.raises(IndexError):
        sharded.rows("features", [6])
    sharded.close(), whole.close()


def test_stale_cache_is_rebuilt(tmp_path):
    encoder = Encoder("lbp", 64, workers=1)
    path = str(tmp_path / "cache")
    build_cache(path, SAMPLES[:3], encoder)
    with pytest.warns(UserWarning, match="stale"):
        info = build_cache(path, SAMPLES[:4], encoder)
    assert info["samples"] == 4
    cache = FeatureCache(path)
    assert cache.files == [os.path.abspath(p) for p in SAMPLES[:4]] and cache.feature_shape == (58, 4, 4)
    cache.close()


def test_an_interrupted_build_continues_with_the_missing_shards(tmp_path, monkeypatch):
    small_shards(monkeypatch)
    monkeypatch.setattr(cache_module, "CHUNK", 1)
    encoder = Encoder("hog", 64, workers=1)
    path = str(tmp_path / "cache")
    calls = []

    def stop_in_the_second_shard(done, total):
        calls.append(done)
        if done == 3:  # the first shard (files 0-1) is written, the second half done
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cache(path, SAMPLES[:5], encoder, progress=stop_in_the_second_shard)
    assert calls == [1, 2, 3]
    assert sorted(os.listdir(path)) == ["manifest.json", "shard-00000.h5"]  # no half-written shard left
    with pytest.raises(CacheError, match="not a complete feature cache"):
        FeatureCache(path)
    computed = []
    original = encoder.features
    encoder.features = lambda photos: computed.append(len(photos)) or original(photos)
    build_cache(path, SAMPLES[:5], encoder)
    assert computed == [1, 1, 1]  # only the files of the missing shards
    monkeypatch.setattr(cache_module, "SHARD_BYTES", 1 << 30)
    build_cache(str(tmp_path / "fresh"), SAMPLES[:5], Encoder("hog", 64, workers=1))
    a, b = FeatureCache(path), FeatureCache(str(tmp_path / "fresh"))
    np.testing.assert_array_equal(every_row(a), every_row(b))
    a.close(), b.close()


def test_flip_adds_mirrored_copies(tmp_path):
    path = str(tmp_path / "cache")
    build_cache(path, SAMPLES[:2], Encoder("hog", 64, workers=1), flip=True)
    cache = FeatureCache(path)
    first, second = (os.path.abspath(p) for p in SAMPLES[:2])
    assert cache.files == [first, first + "#flip", second, second + "#flip"]
    targets, features = every_row(cache, "targets"), every_row(cache)
    assert np.array_equal(targets[1], targets[0][:, ::-1])
    assert not np.allclose(features[0], features[1])
    cache.close()


def test_a_damaged_shard_is_refused_by_its_checksum(tmp_path, monkeypatch):
    small_shards(monkeypatch)
    path = str(tmp_path / "cache")
    build_cache(path, SAMPLES[:4], Encoder("hog", 64, workers=1))
    with h5py.File(shard_path(path, 1), "a") as f:
        f["features"][0, 0, 0, 0] += 1.0  # one bit flip's worth of damage, checksum left as it was
    cache = FeatureCache(path)  # opens shard 0 only
    with pytest.raises(CacheError, match="shard-00001.h5: checksum mismatch"):
        cache.rows("features", [3])
    cache.close()
    with open(shard_path(path, 1), "r+b") as f:
        f.write(bytes(SEAL_BYTES))  # the seal wiped
    with pytest.raises(CacheError, match="shard-00001.h5: carries no featinv seal"):
        FeatureCache(path).rows("features", [3])


def test_a_shard_that_disagrees_with_the_manifest_is_refused(tmp_path, monkeypatch):
    small_shards(monkeypatch)
    path = str(tmp_path / "cache")
    build_cache(path, SAMPLES[:4], Encoder("hog", 64, workers=1))
    os.replace(shard_path(path, 0), shard_path(path, 1) + ".bak")
    os.replace(shard_path(path, 1), shard_path(path, 0))
    build_cache(str(tmp_path / "other"), SAMPLES[:1], Encoder("hog", 64, workers=1))
    os.replace(shard_path(str(tmp_path / "other"), 0), shard_path(path, 1))
    with pytest.raises(CacheError, match="1 samples, the manifest says 2"):
        FeatureCache(path).rows("features", [0, 3])


@pytest.mark.parametrize("manifest", ["{not json", "[]", '{"format": "featinv-feature-cache", "version": 2}',
                                      " " * (2 << 20)])
def test_a_malformed_manifest_is_one_clear_error(tmp_path, manifest):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "manifest.json").write_text(manifest)
    with pytest.raises(CacheError, match="manifest.json: unreadable feature cache manifest"):
        FeatureCache(str(tmp_path / "cache"))


def test_a_cache_from_an_older_featinv_is_named(tmp_path):
    (tmp_path / "cache_train.h5").write_bytes(b"old")
    with pytest.raises(CacheError, match="a file, not a feature cache folder"):
        FeatureCache(str(tmp_path / "cache_train.h5"))


FULL_DISK_BUILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import models.data.cache as cache_module
    from models.data.cache import CacheError
    from models.data.extract import build_cache
    from models.data.encoders import Encoder
    cache_module.SHARD_BYTES = {shard_bytes}
    try:
        build_cache({folder!r}, {files!r}, Encoder("hog", 64, workers=1))
    except CacheError as exc:
        print("CacheError:", exc)
        sys.exit(1)
""")


def test_a_full_disk_is_said_and_keeps_the_finished_shards(tmp_path, monkeypatch):
    """The whole disk fills while a shard is written (a 120 KiB tmpfs: room for two shards of 64 px
    HOG): one line saying so, no crash (h5py segfaulted on a cache written in place), the finished
    shards kept, and on a bigger disk the same build continues from them."""
    with small_disk(tmp_path / "disk", 120 << 10) as disk:
        folder = disk / "cache"
        script = FULL_DISK_BUILD.format(root=ROOT, folder=str(folder), files=SAMPLES[:12],
                                        shard_bytes=2 * HOG_64_SAMPLE_BYTES)
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
        assert "the disk is full" in result.stdout and "every finished shard is kept" in result.stdout
        assert "Traceback" not in result.stderr
        kept = sorted(name for name in os.listdir(folder) if name.startswith("shard-"))
        assert kept and not [name for name in os.listdir(folder) if name.startswith(".tmp-")]
        kept_files = {name: open(folder / name, "rb").read() for name in os.listdir(folder)}
    # The same build on a disk with room continues from the finished shards.
    bigger = tmp_path / "bigger"
    bigger.mkdir()
    for name, data in kept_files.items():
        (bigger / name).write_bytes(data)
    encoder = Encoder("hog", 64, workers=1)
    computed = []
    original = encoder.features
    encoder.features = lambda photos: computed.append(len(photos)) or original(photos)
    small_shards(monkeypatch)
    build_cache(str(bigger), SAMPLES[:12], encoder)
    assert sum(computed) == 12 - 2 * len(kept)
    for name in kept:
        assert open(bigger / name, "rb").read() == kept_files[name]


def test_sift_is_stored_as_its_filled_cells_and_read_back_bit_for_bit(tmp_path):
    encoder = Encoder("sift", 128, workers=1)
    path = str(tmp_path / "cache")
    build_cache(path, SAMPLES[:3], encoder, flip=True)
    with h5py.File(shard_path(path, 0), "r") as f:
        assert "features" not in f and f["values"].shape[1] == 133 and len(f["counts"]) == 6
        filled = len(f["cells"])
    cache = FeatureCache(path)
    photos = np.stack([p for name in SAMPLES[:3] for p in _centre_and_flip(name)])
    expected = encoder.features(photos)
    np.testing.assert_array_equal(every_row(cache), expected)
    np.testing.assert_array_equal(cache.rows("features", [5, 0, 5]), expected[[5, 0, 5]])
    assert filled < 0.1 * 6 * 32 * 32  # fewer than one cell in ten holds a keypoint
    assert os.path.getsize(shard_path(path, 0)) < 0.2 * expected.nbytes
    cache.close()


def _centre_and_flip(path, size=128):
    from models.data.images import center_square, read_image
    photo = center_square(read_image(path), size)
    return photo, photo[:, ::-1]


def test_float16_features_are_the_rounded_float32_ones(tmp_path):
    build_cache(str(tmp_path / "f32"), SAMPLES[:3], Encoder("hog", 64, workers=1))
    build_cache(str(tmp_path / "f16"), SAMPLES[:3], Encoder("hog", 64, workers=1), feature_dtype="float16")
    full, half = FeatureCache(str(tmp_path / "f32")), FeatureCache(str(tmp_path / "f16"))
    np.testing.assert_array_equal(every_row(half), every_row(full).astype(np.float16).astype(np.float32))
    assert every_row(half).dtype == np.float32
    assert os.path.getsize(shard_path(str(tmp_path / "f16"), 0)) < os.path.getsize(shard_path(str(tmp_path / "f32"), 0))
    full.close(), half.close()


@pytest.mark.parametrize("damage", ["cell out of the map", "counts disagree with cells"])
def test_a_sparse_shard_that_does_not_describe_its_maps_is_refused(tmp_path, damage):
    path = str(tmp_path / "cache")
    build_cache(path, SAMPLES[:2], Encoder("sift", 128, workers=1))
    with h5py.File(shard_path(path, 0), "a") as f:
        if damage == "cell out of the map":
            f["cells"][0] = 32 * 32
        else:
            f["counts"][0] += 1
    seal_file(shard_path(path, 0))  # a well-sealed file whose content is wrong
    with pytest.raises(CacheError, match="not a complete feature cache shard"):
        FeatureCache(path)


def test_lbp_flips_are_made_at_read_time_exactly(tmp_path):
    """LBP's flipped copies are not stored: sample 2i + 1 is made from stored sample i by the
    mirror permutation, and equals the features computed on the mirrored photo bit for bit."""
    encoder = Encoder("lbp", 128, workers=1)
    path = str(tmp_path / "cache")
    build_cache(path, SAMPLES[:3], encoder, flip=True)
    with h5py.File(shard_path(path, 0), "r") as f:
        assert len(f["features"]) == 3  # the originals only
    cache = FeatureCache(path)
    assert len(cache) == 6 and cache.files[1] == cache.files[0] + "#flip"
    photos = np.stack([p for name in SAMPLES[:3] for p in _centre_and_flip(name, 128)])
    np.testing.assert_array_equal(every_row(cache), encoder.features(photos))
    np.testing.assert_array_equal(every_row(cache, "targets"), encoder.targets(photos))
    np.testing.assert_array_equal(cache.rows("features", [5, 0, 3, 3]), encoder.features(photos[[5, 0, 3, 3]]))
    assert list(cache.rows("files", [1])) == [os.path.abspath(SAMPLES[0]) + "#flip"]
    cache.close()
