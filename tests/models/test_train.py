"""Decoders, data pipeline and training (`python cli.py train sift`, end to end)."""
import csv
import dataclasses
import glob
import json
import os
import shutil
import signal

import h5py
import numpy as np
import pytest

import nn
import nn.functional as F
from models.networks import decoders
from models.data.cache import FeatureCache
from models.data.encoders import targets_to_float
from models.scoring.metrics import normalized_error
from models.training.train import TrainConfig, TrainingError, batch_indices, split_files, train

SAMPLES = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(__file__)), "..", "models", "data", "sample", "*.jpg")))
FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "train_reference.npz")


@pytest.fixture
def photo_dir(tmp_path):
    """Eight bundled photos in a nested folder (the loader searches recursively)."""
    folder = tmp_path / "photos" / "class_a"
    folder.mkdir(parents=True)
    for path in SAMPLES[:8]:
        shutil.copy(path, folder)
    return str(tmp_path / "photos")


def tiny_config(data, out, **overrides):
    options = dict(feature="hog", data=data, out=str(out), preset="cpu", iters=4, batch_size=2,
                   width=1 / 16, image_size=64, val_every=2, checkpoint_every=2, workers=1, flip=False, crops=0,
                   ema=0.0)  # the trained weights validated (the hog preset's moving average barely moves in 4 steps)
    options.update(overrides)
    return TrainConfig(**options)


@pytest.mark.parametrize("name", list(decoders.REPRESENTATIONS))
def test_every_decoder_maps_its_feature_shape_to_its_output_size(name):
    nn.random.seed(0)
    image_size = 64 if decoders.representation(name).shallow else None
    model = decoders.build(name, width=1 / 16, image_size=image_size)
    shape = decoders.feature_shape(name, image_size)
    with nn.no_grad():
        y = model(nn.Tensor(np.zeros((2,) + shape, np.float32)))
    size = decoders.output_size(name, image_size)
    assert y.shape == (2, 3, size, size)


def test_full_size_shapes_follow_the_supplementary_tables():
    assert decoders.feature_shape("hog") == (31, 32, 32)
    assert decoders.feature_shape("sift") == (133, 64, 64)
    assert decoders.feature_shape("lbp") == (58, 16, 16)
    assert decoders.feature_shape("conv5") == (256, 6, 6)
    assert decoders.feature_shape("fc8") == (1000,)
    assert [decoders.output_size(n) for n in ("hog", "conv5", "fc8", "conv1", "conv2")] == [256, 192, 128, 216, 208]
    hog = decoders.build("hog", width=1 / 32)
    assert hog.convJ1.weight.shape[1] == hog.upconvA3.weight.shape[1] + hog.convB2.weight.shape[0]
    assert hog.upconvJ6.weight.shape[1] == 3  # the last layer always outputs RGB


def test_the_sift_decoder_reads_its_sparse_map_by_filled_cells_with_the_dense_result():
    """SIFT's map is mostly empty cells: its decoder's first convolution is nn.SparseInputConv2d
    (the dense representations keep nn.Conv2d), and on a real map the decoder's output and every
    weight gradient equal those of the same decoder computed densely."""
    from models.data.images import center_square, read_image
    sift, dense = decoders.build("sift", 1 / 8, 128), decoders.build("hog", 1 / 8, 128)
    assert type(sift.conv1) is nn.SparseInputConv2d and type(dense.convA1) is nn.Conv2d
    assert type(sift.conv2) is nn.Conv2d  # only the layer that reads the features
    photos = np.stack([center_square(read_image(path), 128) for path in SAMPLES[:2]])
    maps = decoders.representation("sift").compute(photos, workers=1).astype(np.float64)
    filled = (maps != 0).any(axis=1).mean()
    assert 0 < filled < 0.2, filled
    twin = decoders.Decoder(sift.table, 133, 1 / 8)  # the same layers, all dense
    twin.load_state_dict(sift.state_dict())
    results = []
    for model in (sift, twin):
        for p in model.parameters():
            p.data, p.grad = p.data.astype(np.float64), None
        y = model(nn.Tensor(maps))
        y.backward(np.ones(y.shape))
        results.append([y.data] + [p.grad for p in model.parameters()])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def test_min_channels_floors_the_narrowed_layers_only():
    assert decoders.scaled(512, 0.25, 32) == 128  # wide enough: width alone
    assert decoders.scaled(64, 0.25, 32) == 32  # 16 raised to the floor
    assert decoders.scaled(16, 0.25, 32) == 16  # never above the table's own count
    assert decoders.scaled(64, 0.25) == 16 and decoders.scaled(3, 0.1) == 1
    plain = decoders.build("sift", 0.25, 128)
    floored = decoders.build("sift", 0.25, 128, min_channels=32)
    assert [plain.upconv4.weight.shape, plain.upconv5.weight.shape] == [(32, 16, 4, 4), (16, 8, 4, 4)]
    assert [floored.upconv4.weight.shape, floored.upconv5.weight.shape] == [(32, 32, 4, 4), (32, 32, 4, 4)]
    assert floored.upconv6.weight.shape == (32, 3, 4, 4) and floored.conv1.weight.shape == plain.conv1.weight.shape


def test_a_decoder_trained_with_min_channels_is_rebuilt_from_its_file(photo_dir, tmp_path):
    from models.evaluation.inference import TrainedDecoder
    from models.evaluation.pretrained import export_decoder
    train(tiny_config(photo_dir, tmp_path / "run", iters=2, min_channels=8), log=lambda *_: None)
    checkpoint = str(tmp_path / "run" / "checkpoint.h5")
    export_decoder(checkpoint, str(tmp_path / "hog.h5"))
    for path in (checkpoint, str(tmp_path / "hog.h5")):
        trained = TrainedDecoder(path)
        assert trained.model.upconvJ5.weight.shape == (8, 8, 4, 4), path  # 32 / 16 = 2 channels without the floor
        photos, _, _ = trained.photos(SAMPLES[:1])
        assert np.isfinite(trained.reconstruct(photos)[1]).all()
    with pytest.raises(TrainingError, match="--min-channels"):  # run-defining: a resume may not change it
        train(tiny_config(photo_dir, tmp_path / "run", iters=4, min_channels=4, resume=True), log=lambda *_: None)


def test_a_checkpoint_from_before_min_channels_resumes_without_the_floor():
    from models.training.checkpoint import validate_config
    from models.training.train import resumed_config
    saved = dataclasses.asdict(TrainConfig(feature="sift").resolved())
    del saved["min_channels"]  # written before the option existed: no floor
    saved.update(feature_shape=[133, 32, 32], feature_scale=1.0)  # what a checkpoint's config also holds
    saved = validate_config(saved, "runs/sift/checkpoint.h5")  # as read_config reads it from the file
    resumed = resumed_config(TrainConfig(feature="sift", resume=True), saved, "runs/sift").resolved()
    assert resumed.min_channels == 1 and TrainConfig(feature="sift").resolved().min_channels == 32


def test_shallow_image_size_must_be_a_multiple_of_64():
    with pytest.raises(ValueError, match="multiple of 64"):
        decoders.build("hog", image_size=100)


def test_one_training_step_lowers_the_loss_on_a_fixed_batch():
    nn.random.seed(1)
    model = decoders.build("lbp", width=1 / 16, image_size=64)
    rng = np.random.default_rng(0)
    x = nn.Tensor(rng.random((4, 58, 4, 4), dtype=np.float32))
    target = nn.Tensor(rng.random((4, 3, 64, 64), dtype=np.float32) - 0.5)
    optimizer = nn.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(2):
        loss = F.mse_loss(model(x), target, reduction="paper")
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[1] < losses[0]


def test_twenty_adam_steps_match_pytorch():
    """Identical initial weights and batches: our loss curve equals PyTorch's (stored fixture)."""
    ref = np.load(FIXTURE)
    nn.random.seed(0)
    model = decoders.build("hog", 0.125, 64)
    checksum = np.array([float(np.asarray(p.data, np.float64).sum()) for p in model.parameters()])
    np.testing.assert_allclose(checksum, ref["checksum"], rtol=1e-6,
                               err_msg="initial weights differ from the fixture's: rerun make_train_fixture")
    optimizer = nn.optim.Adam(model.parameters(), lr=float(ref["lr"]))
    losses = []
    for idx in ref["order"]:
        loss = F.mse_loss(model(nn.Tensor(ref["features"][idx])), nn.Tensor(ref["targets"][idx]),
                          reduction="paper")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    np.testing.assert_allclose(losses, ref["losses"], rtol=1e-3)


def test_batches_are_a_function_of_the_step():
    a = [batch_indices(s, 3, 10, seed=5) for s in range(8)]
    b = [batch_indices(s, 3, 10, seed=5) for s in range(8)]
    assert all((x == y).all() for x, y in zip(a, b))
    first_epoch = np.concatenate(a)[:9]
    assert len(set(first_epoch.tolist())) == 9  # no repeats inside an epoch


def test_split_is_by_file_and_reproducible():
    files = [f"f{i}.jpg" for i in range(20)]
    train_files, val_files = split_files(files, 0.1, seed=0)
    assert len(val_files) == 5 and not set(train_files) & set(val_files)
    assert split_files(files, 0.1, seed=0) == (train_files, val_files)


@pytest.mark.parametrize("options", [{}, {"crops": 3, "grad_clip": 50.0, "channel_scale": True},
                                     {"lr_schedule": "cosine"}, {"ema": 0.5}],
                         ids=["whole photos", "crops, clipping, per-channel scale", "cosine schedule",
                              "moving average"])
def test_resume_continues_exactly(photo_dir, tmp_path, options):
    """2 steps, stop, --resume, 2 more == 4 uninterrupted steps, bit for bit."""
    train(tiny_config(photo_dir, tmp_path / "full", **options), log=lambda *_: None)
    train(tiny_config(photo_dir, tmp_path / "split", **options), log=lambda *_: None, on_step=lambda step: step == 2)
    with h5py.File(tmp_path / "split" / "checkpoint.h5", "r") as f:
        assert f.attrs["step"] == 2
    train(tiny_config(photo_dir, tmp_path / "split", resume=True, **options), log=lambda *_: None)
    with h5py.File(tmp_path / "full" / "checkpoint.h5", "r") as a, \
            h5py.File(tmp_path / "split" / "checkpoint.h5", "r") as b:
        assert a.attrs["step"] == b.attrs["step"] == 4
        groups = ["model"] + (["averaged"] if options.get("ema") else [])
        assert sorted(a) == sorted(b) == sorted(groups + ["optimizer"])
        for group in groups:
            names = []
            a[group].visit(lambda n: names.append(n) if isinstance(a[group][n], h5py.Dataset) else None)
            assert names
            for name in names:
                assert np.array_equal(a[group][name][()], b[group][name][()]), (group, name)
    log_rows = open(tmp_path / "split" / "log.csv").read().splitlines()
    assert [r.split(",")[0] for r in log_rows[1:]] == ["1", "2", "3", "4"]


def test_the_learning_rate_schedules(photo_dir, tmp_path):
    """The log's lr column, the rate after step t (the one step t + 1 uses): step: lr / 10 from
    int(0.8 T) on; cosine: lr (1 + cos(pi t / T)) / 2, 0 after the last step. A resume may not
    change the schedule."""
    for schedule, expected in (("step", [1e-3, 1e-3, 1e-4, 1e-4]),
                               ("cosine", [1e-3 * (1 + np.cos(np.pi * t / 4)) / 2 for t in range(1, 5)])):
        train(tiny_config(photo_dir, tmp_path / schedule, lr_schedule=schedule, lr=1e-3), log=lambda *_: None)
        with open(tmp_path / schedule / "log.csv", newline="") as f:
            lrs = [float(row["lr"]) for row in csv.DictReader(f)]
        np.testing.assert_allclose(lrs, expected, rtol=4e-3, atol=1e-12, err_msg=schedule)  # logged to 3 digits
    with pytest.raises(TrainingError, match="--lr-schedule"):
        train(tiny_config(photo_dir, tmp_path / "step", iters=6, lr_schedule="cosine", resume=True), log=lambda *_: None)
    with pytest.raises(ValueError, match="--lr-schedule 'cosin': expected one of step, cosine"):
        train(tiny_config(photo_dir, tmp_path / "typo", lr_schedule="cosin"), log=lambda *_: None)


def test_a_moving_average_of_the_weights_is_validated_kept_and_reconstructed_with(photo_dir, tmp_path):
    """With --ema the validation errors, best.h5 and every reader of a checkpoint (eval,
    reconstruct, export-decoder) use the average; the trained weights are kept beside it for
    --resume. A resume may not change the decay."""
    from models.training.checkpoint import decoder_group
    from models.evaluation.inference import TrainedDecoder
    from models.evaluation.pretrained import export_decoder, read_decoder_file
    from models.training.train import validate
    out = tmp_path / "run"
    summary = train(tiny_config(photo_dir, out, ema=0.5, lr=1e-2), log=lambda *_: None)
    cache = FeatureCache(str(out / "cache_val"))
    errors = {}
    for group in ("model", "averaged"):
        model = decoders.build("hog", 1 / 16, 64)
        with h5py.File(out / "checkpoint.h5", "r") as f:
            model.load_state_dict({k: f[group][k.replace(".", "/")][()] for k in model.state_dict()})
            assert decoder_group(f) == "averaged"
            scale = json.loads(f.attrs["config"])["feature_scale"]
        errors[group] = validate(model, cache, scale, "cpu", 256)[0]
    cache.close()
    assert errors["averaged"] == summary["val_history"][-1][1] != errors["model"]
    trained = TrainedDecoder(str(out / "checkpoint.h5"), "cpu")
    expected = dict(trained.model.state_dict())
    with h5py.File(out / "checkpoint.h5", "r") as f:
        for name, array in expected.items():
            assert np.array_equal(array, f["averaged"][name.replace(".", "/")][()]), name
    export_decoder(str(out / "checkpoint.h5"), str(tmp_path / "decoder.h5"))
    config, weights, attrs = read_decoder_file(str(tmp_path / "decoder.h5"))
    assert attrs["training"]["ema"] == 0.5
    for name, array in expected.items():
        np.testing.assert_array_equal(weights[name], array.astype(np.float16).astype(np.float32), err_msg=name)
    with pytest.raises(TrainingError, match="--ema"):
        train(tiny_config(photo_dir, out, iters=6, ema=0.9, resume=True), log=lambda *_: None)
    # a checkpoint from before --ema (no "ema" in its config) resumes with the trained weights,
    # although the hog preset now averages them
    older = tmp_path / "older"
    train(tiny_config(photo_dir, older, iters=2), log=lambda *_: None)
    with h5py.File(older / "checkpoint.h5", "a") as f:
        config = json.loads(f.attrs["config"])
        del config["ema"]
        f.attrs["config"] = json.dumps(config)
    nn.serialization.seal_file(older / "checkpoint.h5")
    summary = train(tiny_config(photo_dir, older, iters=4, resume=True, ema=None), log=lambda *_: None)
    assert summary["steps"] == 4
    with h5py.File(older / "checkpoint.h5", "r") as f:
        assert "averaged" not in f and json.loads(f.attrs["config"])["ema"] == 0.0
    for bad, match in (({"ema": 1.0}, r"--ema 1.0: expected a number in \[0, 1\)"), ({"ema": 0.9, "feature": "conv5", "train_encoder": True},
                                                                "--ema is not supported with --train-encoder")):
        with pytest.raises(ValueError, match=match):
            train(tiny_config(photo_dir, tmp_path / "bad", **bad), log=lambda *_: None)


def test_training_writes_its_outputs(photo_dir, tmp_path):
    summary = train(tiny_config(photo_dir, tmp_path / "run"), log=lambda *_: None)
    out = tmp_path / "run"
    for name in ("checkpoint.h5", "log.csv", "loss.png", "recon_0000002.png", "summary.json", "cache_train/manifest.json"):
        assert (out / name).exists(), name
    assert summary["steps"] == 4 and [s for s, _ in summary["val_history"]] == [0, 2, 4]
    assert np.isfinite(summary["final_loss"])


def test_bad_images_are_skipped_and_counted(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in SAMPLES[:6]:
        shutil.copy(path, folder)
    (folder / "garbage.jpg").write_bytes(b"not an image at all")
    data = open(SAMPLES[0], "rb").read()
    (folder / "truncated.jpg").write_bytes(data[:200])
    import imageio.v3 as iio
    iio.imwrite(folder / "grey.png", np.zeros((64, 64), np.uint8))  # a photo: read as three equal channels
    iio.imwrite(folder / "tiny.png", np.zeros((8, 8, 3), np.uint8))
    lines = []
    summary = train(tiny_config(str(folder), tmp_path / "run", iters=2), log=lambda *a: lines.append(str(a[0])))
    assert any("3 unusable file(s) left out" in line for line in lines)  # all three known from their headers
    assert sum(summary["skipped"].values()) == 3
    assert sum(summary["samples"].values()) == 7


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="no JPEG or PNG"):
        train(tiny_config(str(tmp_path / "empty"), tmp_path / "run"), log=lambda *_: None)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(photo_dir, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(photo_dir, out, iters=2), log=lambda *_: None)
    before = open(out / "checkpoint.h5", "rb").read()
    shard = out / "cache_train" / "shard-00000.h5"
    with h5py.File(shard, "a") as f:
        f["features"][0] = np.nan  # one poisoned sample
    nn.serialization.seal_file(shard)
    with pytest.raises(TrainingError, match="loss became nan"):
        train(tiny_config(photo_dir, out, iters=50, resume=True), log=lambda *_: None)
    assert open(out / "checkpoint.h5", "rb").read() == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_a_checkpoint(photo_dir, tmp_path, sig):
    """Ctrl-C, and SIGTERM (what batch schedulers and containers send), save and stop."""
    out = tmp_path / "run"

    def interrupt(step):
        if step == 3:
            os.kill(os.getpid(), sig)

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(photo_dir, out, iters=10, checkpoint_every=100), log=lambda *_: None, on_step=interrupt)
    with h5py.File(out / "checkpoint.h5", "r") as f:
        assert f.attrs["step"] == 3


def test_normalized_error_is_one_for_a_random_other_image():
    rng = np.random.default_rng(0)
    images = rng.random((6, 8, 8, 3))
    assert normalized_error(images, images) == 0
    shifted = np.roll(images, 1, axis=0)
    assert 0.5 < normalized_error(images, shifted) < 1.5


def test_targets_round_trip_to_images():
    photos = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    from models.data.encoders import float_to_images
    assert np.allclose(float_to_images(targets_to_float(photos)), photos, atol=1e-3)


def test_reconstructions_are_clipped_to_pixel_values_and_lose_no_accuracy_by_it():
    from models.data.encoders import float_to_images
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    outputs = targets_to_float(photos) + rng.normal(0, 0.4, (4, 3, 8, 8)).astype(np.float32)
    images = float_to_images(outputs)
    unclipped = (outputs.transpose(0, 2, 3, 1) + 0.5) * 255.0
    assert images.min() == 0 and images.max() == 255 and (unclipped < 0).any() and (unclipped > 255).any()
    inside = (unclipped >= 0) & (unclipped <= 255)
    assert np.array_equal(images[inside], unclipped[inside])
    assert normalized_error(photos, images) < normalized_error(photos, unclipped)


def test_cpu_preset_is_chosen_per_feature():
    from models.training.train import CPU_PRESETS
    for feature, preset in CPU_PRESETS.items():
        resolved = TrainConfig(feature=feature).resolved()
        for key, value in preset.items():
            assert getattr(resolved, key) == value, (feature, key)
    sift = TrainConfig(feature="sift").resolved()
    shape = decoders.feature_shape("sift", sift.image_size)
    assert shape[1] // 16 >= 2  # four stride-2 convolutions leave at least 2x2: the map never collapses to 1x1
    assert TrainConfig(feature="sift", image_size=64, width=0.5).resolved().image_size == 64  # options win


def test_per_channel_feature_scale_is_stored_and_used_by_inference(photo_dir, tmp_path):
    from models.evaluation.inference import TrainedDecoder
    train(tiny_config(photo_dir, tmp_path / "run", feature="sift", channel_scale=True, iters=2), log=lambda *_: None)
    trained = TrainedDecoder(str(tmp_path / "run" / "checkpoint.h5"))
    assert len(trained.scale) == 133
    cache = FeatureCache(str(tmp_path / "run" / "cache_train"))
    scaled = cache.rows("features", np.arange(len(cache))) * np.asarray(trained.scale, np.float32)[:, None, None]
    cache.close()
    rms = np.sqrt((scaled.astype(np.float64) ** 2).mean(axis=(0, 2, 3)))
    used = rms > 0
    np.testing.assert_allclose(rms[used], 1.0, rtol=1e-3)  # every channel with values reaches unit RMS
    assert np.allclose(np.asarray(trained.scale)[~used], 1.0)
    photos, _, _ = trained.photos(SAMPLES[:2])
    targets, recons = trained.reconstruct(photos)
    assert recons.shape == targets.shape and np.isfinite(recons).all()


def test_the_feature_scale_is_estimated_from_the_whole_cache():
    """A cache's first rows are the crops of its first photos: the scale must not come from them
    alone. Here the first half of the rows is 0 and the rest 1, so the RMS is about 0.71."""
    from models.training.train import feature_scale

    class Rows:
        def __len__(self):
            return 2000

        def rows(self, name, indices):
            return (np.asarray(indices) >= 1000).astype(np.float32)[:, None, None, None] * np.ones((1, 2, 3, 3))

    assert 1.3 < feature_scale(Rows()) < 1.55
    assert all(1.3 < s < 1.55 for s in feature_scale(Rows(), per_channel=True))
