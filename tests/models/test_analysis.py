"""The paper's analyses and the study tools, through the command line on tiny models."""
import csv
import glob
import os

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

import nn
from cli import main
from models.analyses import analysis
from models.evaluation.inference import TrainedDecoder
from models.training.train import TrainConfig, train
from tests.conftest import sample_folder

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sorted(glob.glob(os.path.join(TESTS, "..", "models", "data", "sample", "*.jpg")))
SMALL_CAFFENET = os.path.join(TESTS, "fixtures", "alexnet", "caffenet_small.h5")
PAD = 4


def assert_grid(path, rows, cols, side, row_labels=False):
    """The PNG at ``path`` is a grid of rows x cols tiles of ``side`` px, with a text header above
    (and with ``row_labels`` a column of labels on the left)."""
    height, width, _ = iio.imread(path).shape
    header = height - (rows * (side + PAD) + PAD)
    assert 10 <= header <= 120, (height, header)
    label_width = width - (cols * (side + PAD) + PAD)
    assert (label_width > 20) if row_labels else (label_width == 0), (width, label_width)


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny decoders trained for 3 steps: hog, fc8 and fc6 on the reduced CaffeNet (20 classes), and
    fc6 with the encoder fine-tuned (the autoencoder variant)."""
    root = tmp_path_factory.mktemp("analysis")
    data = root / "photos"
    sample_folder(data, 7)
    settings = dict(data=str(data), iters=3, batch_size=2, width=1 / 16, val_every=3, checkpoint_every=3,
                    workers=1)
    runs = {"hog": TrainConfig(feature="hog", image_size=64, **settings),
            "fc8": TrainConfig(feature="fc8", weights=SMALL_CAFFENET, **settings),
            "fc6": TrainConfig(feature="fc6", weights=SMALL_CAFFENET, **settings),
            "fc6_autoencoder": TrainConfig(feature="fc6", weights=SMALL_CAFFENET, train_encoder=True, **settings)}
    for name, cfg in runs.items():
        cfg.out = str(root / "runs" / name)
        train(cfg, log=lambda line: None)
    return root, data, {name: os.path.join(root, "runs", name, "checkpoint.h5") for name in runs}


# --- operations on feature vectors ------------------------------------------------------------------

def test_top_k_split_keeps_exactly_k_or_the_rest():
    features = np.random.default_rng(0).standard_normal((3, 20)).astype(np.float32)
    only_top, without_top = analysis.top_k_split(features, 5)
    assert ((only_top != 0).sum(1) == 5).all() and ((without_top != 0).sum(1) == 15).all()
    np.testing.assert_array_equal(only_top + without_top, features)
    assert (only_top.max(1) == features.max(1)).all()


def test_binarize_and_drop():
    features = np.array([[0, 2, 4, 0], [1, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(analysis.binarize(features), [[0, 3, 3, 0], [1, 0, 0, 0]])
    dropped = analysis.drop_units(np.ones((4, 1000), np.float32), 0.5, np.random.default_rng(0))
    assert set(np.unique(dropped)) == {0, 1} and abs(dropped.mean() - 0.5) < 0.05


def test_single_units_and_interpolation():
    vectors = analysis.single_units(20, [3, 7], 2.5)
    assert ((vectors != 0).sum(1) == 1).all() and vectors[0, 3] == vectors[1, 7] == 2.5
    a, b = np.zeros(4, np.float32), np.ones(4, np.float32)
    np.testing.assert_allclose(analysis.interpolate(a, b, 5)[:, 0], [0, 0.25, 0.5, 0.75, 1])
    with pytest.raises(ValueError, match="out of range"):
        analysis.single_units(20, [20], 1.0)


def test_histogram_samples_have_the_fitted_marginals():
    rng = np.random.default_rng(0)
    features = np.maximum(rng.normal(0.3, 1.0, (200, 50)), 0).astype(np.float32)  # ReLU-like: many zeros
    model = analysis.HistogramModel(features, bins=16)
    samples = model.sample(4000, rng)
    assert samples.shape == (4000, 50)
    standard_error = samples.std(0) / np.sqrt(len(samples))
    assert (np.abs(samples.mean(0) - model.mean()) < 4 * standard_error).mean() > 0.98
    np.testing.assert_allclose((samples == 0).mean(0), (features == 0).mean(0), atol=0.04)
    np.testing.assert_allclose(model.mean(), features.mean(0), atol=0.05)  # binning moves the mean little


def test_truncated_gaussian_samples_are_non_negative_with_the_truncated_mean():
    rng = np.random.default_rng(1)
    features = rng.normal(0.2, 1.0, (100, 30)) @ rng.normal(0, 0.3, (30, 30))
    model = analysis.TruncatedGaussian(features)
    samples = model.sample(6000, rng)
    assert samples.min() >= 0
    standard_error = samples.std(0) / np.sqrt(len(samples))
    assert (np.abs(samples.mean(0) - model.mean()) < 4 * standard_error + 1e-6).all()


# --- the commands ---------------------------------------------------------------------------------

def test_perturb_writes_a_grid_and_the_errors(runs, tmp_path):
    _, _, ckpt = runs
    out = tmp_path / "perturb.png"
    invoke("perturb", "fc6", *SAMPLES[:2], "--checkpoint", ckpt["fc6"], "--out", out)
    assert_grid(out, 2, 4, 128)  # input | clean | binarized | dropped 50%
    table = (tmp_path / "perturb.md").read_text()
    for name in ("clean", "binarized", "dropped 50%"):
        assert name in table


def test_dark_knowledge_keeps_the_top_5_or_the_rest(runs, tmp_path):
    _, _, ckpt = runs
    out = tmp_path / "dark.png"
    output = invoke("dark-knowledge", *SAMPLES[:2], "--checkpoint", ckpt["fc8"], "--out", out)
    assert_grid(out, 2, 4, 128)
    rows = [line.split("|")[2:5] for line in output.splitlines() if line.startswith("| enlightenment")]
    assert [[int(c) for c in row] for row in rows] == [[20, 5, 15]] * 2  # the reduced fc8 has 20 units


def test_single_neuron_by_index_and_class(runs, tmp_path):
    _, _, ckpt = runs
    out = tmp_path / "single.png"
    invoke("single-neuron", "--checkpoint", ckpt["fc8"], "--index", 3, "--class", "goldfish", "--out", out)
    assert_grid(out, 1, 2, 128)
    trained = TrainedDecoder(ckpt["fc8"])
    _, vectors = analysis.single_neuron_images(trained, [3, 1], 7.0)
    assert ((vectors != 0).sum(1) == 1).all() and vectors[1, 1] == 7.0
    result = CliRunner().invoke(main, ["single-neuron", "--checkpoint", ckpt["hog"], "--index", "0"])
    assert result.exit_code == 1 and "fully connected" in result.output


def test_interpolation_endpoints_are_the_images_reconstructions(runs, tmp_path):
    _, _, ckpt = runs
    out = tmp_path / "interp.png"
    invoke("interpolate", "hog", SAMPLES[0], SAMPLES[1], "--checkpoint", ckpt["hog"], "--steps", 4, "--out", out)
    assert_grid(out, 1, 4, 128)
    trained = TrainedDecoder(ckpt["hog"])
    photos, _, _ = trained.photos(SAMPLES[:2])
    images, _ = analysis.interpolation_images(trained, photos[0], photos[1], 4)
    features = trained.encoder.features(photos)
    np.testing.assert_array_equal(images[0], trained.decode(features[:1])[0])
    np.testing.assert_array_equal(images[-1], trained.decode(features[1:])[0])


@pytest.mark.parametrize("method", ["histogram", "gaussian"])
def test_random_features_decode_a_grid(runs, tmp_path, method):
    _, data, ckpt = runs
    out = tmp_path / "random.png"
    invoke("random-features", "fc6", "--checkpoint", ckpt["fc6"], "--data", data, "--method", method, "--count", 3,
           "--out", out)
    assert_grid(out, 1, 3, 128)
    trained = TrainedDecoder(ckpt["fc6"])
    _, samples, _ = analysis.random_feature_images(trained, data, method, 3, seed=0)
    assert samples.shape == (3, 32) and samples.min() >= 0


def test_invert_optimize_lowers_the_feature_distance(tmp_path):
    out = tmp_path / "inversion.png"
    output = invoke("invert-optimize", "conv3", SAMPLES[0], "--weights", SMALL_CAFFENET, "--iters", 8,
                    "--out", out)
    line = next(line for line in output.splitlines() if line.startswith("feature distance"))
    before, after = (float(part.split()[-2]) for part in line.split(":")[1].split(","))
    assert after < before
    assert_grid(out, 1, 2, 256)  # photo | inversion (227 px), tiles of the larger size


def test_report_has_one_row_per_run(runs, tmp_path):
    root, data, _ = runs
    out = tmp_path / "report"
    invoke("report", "--runs", root / "runs", "--data", data, "--out", out, "--with-optimization", 2,
           "--optimization-iters", 2, "--figure-images", 2)
    with open(out / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(os.path.basename(r["run"]) for r in rows) == ["fc6", "fc6_autoencoder", "fc8", "hog"]
    for row in rows:
        assert np.isfinite(float(row["error"])) and np.isfinite(float(row["binarized"]))
        assert (row["optimization"] != "") == (row["feature"] != "hog")
    markdown = (out / "report.md").read_text()
    assert "| autoencoder |" in markdown and "| baseline: mean image |" in markdown
    assert "| baseline: linear (ridge) |" in markdown
    for row in rows:  # each fixed-encoder run is shown beside its baselines, and flagged if it does not beat them
        if row["encoder"] == "fixed":
            assert 0 < float(row["mean image"]) < 2 and 0 < float(row["linear (ridge)"]) < 3
            assert row["beats baselines"] in ("yes", "NO")
    assert_grid(out / "report.png", 2, 5, 256, row_labels=True)  # photo + 4 runs


def test_train_encoder_changes_only_the_encoder_layers_it_uses(runs):
    _, _, ckpt = runs
    original, _ = nn.load_arrays(SMALL_CAFFENET)
    for run, changed in (("fc6", set()), ("fc6_autoencoder", {"conv1", "conv2", "conv3", "conv4", "conv5", "fc6"})):
        weights = TrainedDecoder(ckpt[run]).encoder.network.state_dict()
        moved = {name.split(".")[0] for name, w in weights.items() if not np.array_equal(w, original[name])}
        assert moved == changed, run


def test_train_encoder_resumes_exactly(runs, tmp_path):
    """The fine-tuned encoder lives in the checkpoint: 2 steps, stop, resume 1 == 3 uninterrupted."""
    root, data, ckpt = runs
    settings = dict(feature="fc6", weights=SMALL_CAFFENET, train_encoder=True, data=str(data), iters=3,
                    batch_size=2, width=1 / 16, val_every=3, checkpoint_every=3, workers=1,
                    out=str(tmp_path / "split"))
    train(TrainConfig(**settings), log=lambda line: None, on_step=lambda step: step == 2)
    train(TrainConfig(resume=True, **settings), log=lambda line: None)
    resumed = TrainedDecoder(str(tmp_path / "split" / "checkpoint.h5"))
    uninterrupted = TrainedDecoder(ckpt["fc6_autoencoder"])
    for ours, theirs in ((resumed.model, uninterrupted.model), (resumed.encoder.network, uninterrupted.encoder.network)):
        reference = dict(theirs.named_parameters())
        assert all(np.array_equal(p.data, reference[name].data) for name, p in ours.named_parameters())


def test_train_encoder_refuses_shallow_features(tmp_path):
    with pytest.raises(ValueError, match="AlexNet feature"):
        TrainConfig(feature="hog", train_encoder=True).resolved()


# --- study tools ------------------------------------------------------------------------------------

def test_inspect_lists_every_layer(tmp_path):
    output = invoke("inspect", "caffenet", "--weights", SMALL_CAFFENET, "--image", SAMPLES[0],
                    "--csv", tmp_path / "layers.csv")
    with open(tmp_path / "layers.csv") as f:
        rows = {row["layer"]: row for row in csv.DictReader(f)}
    assert rows["conv1"]["output"] == "(12, 55, 55)" and int(rows["conv1"]["params"]) == 12 * 3 * 121 + 12
    assert int(rows["fc8"]["flops"]) == 2 * 32 * 20
    assert 0 < float(rows["relu1"]["zeros"]) < 1
    assert "| norm2 | LocalResponseNorm |" in output
    decoder = invoke("inspect", "hog", "--width", 0.0625, "--image-size", 64)
    assert "| upconvJ6 | ConvTranspose2d | (3, 64, 64) |" in decoder
    floored = invoke("inspect", "sift", "--width", 0.25, "--image-size", 128, "--min-channels", 32)
    assert "| upconv5 | ConvTranspose2d | (32, 64, 64) |" in floored and "| upconv1 | ConvTranspose2d | (128, 4, 4) |" in floored
    # SIFT's first layer works from the filled cells: zeros (no photo) cost nothing, a real map a fraction
    assert "| conv1 | SparseInputConv2d | (64, 16, 16) | 212864 | 0 |" in floored and "FLOPs are those of this input" in floored
    photo = invoke("inspect", "sift", "--width", 0.25, "--image-size", 128, "--image", SAMPLES[0], "--csv", tmp_path / "sift.csv")
    with open(tmp_path / "sift.csv") as f:
        conv1 = next(row for row in csv.DictReader(f) if row["layer"] == "conv1")
    dense = 2 * 64 * 16 * 16 * 133 * 25
    assert 0 < int(conv1["flops"]) < dense / 4 and "FLOPs are those" not in photo


@pytest.mark.parametrize("target", ["local_response_norm", "conv_transpose2d", "caffenet", "fc8"])
def test_gradcheck_command_passes(target):
    output = invoke("gradcheck", target)
    assert "FAIL" not in output and output.count("| ok |") >= 1
