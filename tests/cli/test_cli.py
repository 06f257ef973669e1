"""The command line through click's test runner: every command runs and writes what it says."""
import glob
import os
import subprocess
import sys

import h5py
import pytest
from click.testing import CliRunner

from cli import main
from tests.conftest import sample_folder

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
SAMPLES = sorted(glob.glob(os.path.join(TESTS, "..", "models", "data", "sample", "*.jpg")))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny HOG decoder trained for 3 steps through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "photos"
    sample_folder(data, 7)
    out = root / "run"
    result = CliRunner().invoke(main, ["train", "hog", "--data", str(data), "--out", str(out), "--iters", "3",
                                       "--batch-size", "2", "--width", "0.0625", "--image-size", "64",
                                       "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "validation error" in result.output
    assert "validated on 5 held-out photos; best: step" in result.output
    assert "baselines on the same photos: mean image" in result.output
    return root, data, out


def test_train_writes_a_checkpoint(trained_run):
    _, _, out = trained_run
    with h5py.File(out / "checkpoint.h5", "r") as f:
        assert f.attrs["step"] == 3


def test_reconstruct_writes_a_grid(trained_run):
    root, _, out = trained_run
    grid = root / "grid.png"
    result = CliRunner().invoke(main, ["reconstruct", "hog", SAMPLES[0], SAMPLES[1], "--checkpoint",
                                       str(out / "checkpoint.h5"), "--out", str(grid)])
    assert result.exit_code == 0, result.output
    import imageio.v3 as iio
    image = iio.imread(grid)
    assert image.shape[0] > 2 * 128 and image.shape[1] > 4 * 128  # 2 rows of (photo | recon | 2 baselines)
    assert (image[:30] < 100).all(-1).sum() > 50  # the title and column labels


def test_eval_prints_a_table(trained_run):
    _, data, out = trained_run
    result = CliRunner().invoke(main, ["eval", "hog", "--checkpoint", str(out / "checkpoint.h5"),
                                       "--data", str(data)])
    assert result.exit_code == 0, result.output
    rows = {line.split("|")[1].strip(): line.split("|")[2:] for line in result.output.splitlines()
            if line.startswith("| ") and "method" not in line}
    assert set(rows) == {"decoder", "mean image", "linear (ridge)"}
    assert all(int(r[0]) == 7 and 0 < float(r[2]) < 3 for r in rows.values())
    assert "WARNING: the decoder does not beat" in result.output  # 3 steps: flagged, not hidden
    assert "a noisy estimate: measure on more with 'cli.py eval" in result.output  # 7 photos: cautioned


def test_eval_refuses_another_feature(trained_run):
    _, data, out = trained_run
    result = CliRunner().invoke(main, ["eval", "sift", "--checkpoint", str(out / "checkpoint.h5"),
                                       "--data", str(data)])
    assert result.exit_code == 1 and "trained on 'hog'" in result.output


def test_features_command_writes_hdf5(tmp_path):
    out = tmp_path / "f.h5"
    result = CliRunner().invoke(main, ["features", "lbp", SAMPLES[0], "--out", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        assert f["features"].shape == (58, 16, 16)
        assert f.attrs["representation"] == "lbp"


def test_bad_checkpoint_is_one_clear_line(tmp_path):
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"\x00" * 100)
    result = CliRunner().invoke(main, ["eval", "hog", "--checkpoint", str(bogus), "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert "bogus.h5" in result.output and "Traceback" not in result.output


def test_train_on_an_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["train", "hog", "--data", str(tmp_path / "empty"), "--out",
                                       str(tmp_path / "run")])
    assert result.exit_code == 1 and "no JPEG or PNG images" in result.output


def test_import_weights_command(tmp_path):
    source = sorted(glob.glob(os.path.join(TESTS, "fixtures", "weights", "*.pth")))
    assert source, "weight fixtures missing"
    out = tmp_path / "w.h5"
    result = CliRunner().invoke(main, ["import-weights", source[0], "--out", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        assert "conv1" in f and f.attrs["model"] == "alexnet_torchvision"


def test_gpu_without_cupy_is_one_clear_line(tmp_path):
    """In a process that cannot import CuPy (the tests' stand-in left off the path)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    probe = subprocess.run([sys.executable, "-c", "import cupy"], capture_output=True, cwd=ROOT, env=env)
    if probe.returncode == 0:
        pytest.skip("CuPy is installed here: the missing-CuPy message cannot be shown")
    result = subprocess.run([sys.executable, "cli.py", "train", "hog", "--device", "gpu", "--iters", "1", "--out",
                             str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 1 and "the GPU needs CuPy: pip install" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_a_trained_decoder(trained_run):
    _, _, out = trained_run
    result = CliRunner().invoke(main, ["inspect", "hog", "--checkpoint", str(out / "checkpoint.h5"), "--image",
                                       SAMPLES[0]])
    assert result.exit_code == 0, result.output
    layers, gradients = result.output.split("one backward:")  # the layer table, then the gradients' table
    rows = {line.split("|")[1].strip(): line for line in layers.splitlines() if line.startswith("|")}
    assert "(3, 64, 64)" in rows["upconvJ6"]  # the run's 64x64 output
    assert "| upconvJ6 |" in gradients
    assert "convA1" in rows and len(rows["convA1"].split("|")) == 11  # with activation statistics
    plain = CliRunner().invoke(main, ["inspect", "hog", "--checkpoint", str(out / "checkpoint.h5")])
    assert plain.exit_code == 0 and "| upconvJ6 | ConvTranspose2d | (3, 64, 64) |" in plain.output
