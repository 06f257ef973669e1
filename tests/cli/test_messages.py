"""What a user reads when something is off: one line that says what happened and what to do,
never an internal dump, an ``inf``, a NaN standing for "no number" or a NumPy warning."""
import os
import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from models.scoring.metrics import normalized_error
from models.training.train import TrainConfig, train
from tests.conftest import SAMPLES, sample_folder


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny run (2 steps) and its photos."""
    root = tmp_path_factory.mktemp("messages")
    photos = str(sample_folder(root / "photos", 8))
    out = root / "run"
    train(TrainConfig(feature="hog", data=photos, out=str(out), iters=2, batch_size=2, width=1 / 16, image_size=64,
                      val_every=2, checkpoint_every=2, workers=1, crops=0), log=quiet)
    return photos, out


def one_line_error(result):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("as_checkpoint", ["run folder", "empty folder"])
def test_a_folder_given_as_a_checkpoint_is_one_line_naming_the_fix(run, tmp_path, as_checkpoint):
    photos, out = run
    folder = out if as_checkpoint == "run folder" else tmp_path
    line = one_line_error(CliRunner().invoke(main, ["eval", "hog", "--checkpoint", str(folder), "--data", photos]))
    assert "buf =" not in line and "file descriptor" not in line and "time =" not in line, line
    assert f"{folder}: a folder, not a file" in line, line
    if as_checkpoint == "run folder":
        assert str(out / "checkpoint.h5") in line, line


@pytest.mark.parametrize("images", ["one photo repeated", "all black"])
def test_identical_images_have_no_normalised_error(images):
    if images == "one photo repeated":
        import imageio.v2 as imageio
        photo = imageio.imread(SAMPLES[0])[:64, :64].astype(np.float32)
        targets = np.stack([photo] * 4)
    else:
        targets = np.zeros((3, 64, 64, 3), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero warning
        with pytest.raises(ValueError, match="undefined: the .* images are all identical .* use different photos"):
            normalized_error(targets, targets + 1)


def test_training_on_identical_validation_photos_is_one_line(tmp_path):
    data, val = tmp_path / "data", tmp_path / "val"
    sample_folder(data, 4)
    val.mkdir()
    for k in range(3):
        shutil.copy(SAMPLES[5], val / f"same{k}.jpg")
    line = one_line_error(CliRunner().invoke(main, [
        "train", "hog", "--data", str(data), "--val", str(val), "--out", str(tmp_path / "run"), "--iters", "1",
        "--width", "0.0625", "--image-size", "64", "--workers", "1", "--crops", "0"]))
    assert "all identical" in line and "inf" not in line.split(), line


def test_resuming_a_finished_run_says_there_is_nothing_to_train(run):
    photos, out = run
    result = CliRunner().invoke(main, ["train", "hog", "--data", photos, "--out", str(out), "--resume", "--iters", "2"])
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output.split(), result.output
    assert "nothing to train: the run finished at step 2" in result.output
    assert "--resume --iters N, N > 2" in result.output


def test_a_damaged_cache_shard_names_how_to_rebuild_it(run, tmp_path):
    photos, out = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    shard = copy / "cache_train" / "shard-00000.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a bit flip in the data: the seal catches it
    shard.write_bytes(bytes(data))
    line = one_line_error(CliRunner().invoke(main, ["train", "hog", "--data", photos, "--out", str(copy), "--resume",
                                                    "--iters", "3"]))
    assert f"{shard}: checksum mismatch" in line, line
    assert f"delete {shard} and run the same command again" in line, line
    os.remove(shard)  # the fix the message names
    result = CliRunner().invoke(main, ["train", "hog", "--data", photos, "--out", str(copy), "--resume", "--iters", "3"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args", [["features", "hog", SAMPLES[0], "--image-size", "1048576", "--out", "f.h5"],
                                  ["inspect", "hog", "--preset", "cpu", "--width", "64"]])
def test_sizes_outside_train_are_refused_before_any_work_with_their_estimate(tmp_path, monkeypatch, args):
    """features --image-size and inspect --width set sizes too: their memory is estimated first
    (models.training.memory), never allocated until NumPy gives up."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEATINV_MAX_MEMORY", "4")
    line = one_line_error(CliRunner().invoke(main, args))
    assert "need an estimated" in line and "more than the 4 GiB available" in line, line
    assert not os.path.exists(tmp_path / "f.h5")


def test_an_error_after_a_progress_bar_starts_a_line_of_its_own(tmp_path):
    """eval draws a bar while it reads the photos; when none is usable the bar's line ends before
    the one-line error, which a user (and the fault sweep) reads at the start of its line."""
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(b"not a photo")
    line = one_line_error(CliRunner().invoke(main, ["eval", "hog", "--data", str(tmp_path)]))
    assert "no usable photo" in line, line
