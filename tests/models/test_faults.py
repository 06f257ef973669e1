"""Faults a training run must survive without losing or corrupting a result (nothing lost):
a second run into a finished run's folder, two runs at once, a NaN that would reach disk, SIGTERM,
a resume with conflicting options, and arguments that make no sense."""
import glob
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from models.training.train import TrainConfig, TrainingError, train
from nn.serialization import seal_file
from tests.conftest import sample_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))


@pytest.fixture
def photos(tmp_path):
    return str(sample_folder(tmp_path / "photos", 8))


def tiny(photos, out, **overrides):
    options = dict(feature="hog", data=photos, out=str(out), iters=2, batch_size=2, width=1 / 16, image_size=64,
                   val_every=2, checkpoint_every=2, workers=1, crops=0)
    options.update(overrides)
    return TrainConfig(**options)


def quiet(*_):
    pass


def test_a_finished_run_is_not_replaced_without_overwrite(photos, tmp_path):
    out = tmp_path / "run"
    train(tiny(photos, out), log=quiet)
    before = (out / "checkpoint.h5").read_bytes()
    with pytest.raises(TrainingError, match="already holds a run .* --resume, replace it with --overwrite"):
        train(tiny(photos, out), log=quiet)
    assert (out / "checkpoint.h5").read_bytes() == before
    (out / "recon_0000999.png").write_bytes(b"from the old run")
    train(tiny(photos, out, overwrite=True, iters=4), log=quiet)
    assert not (out / "recon_0000999.png").exists()
    with h5py.File(out / "checkpoint.h5", "r") as f:
        assert f.attrs["step"] == 4
    assert not (out / "run.lock").exists()


def test_a_running_run_locks_its_folder(photos, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR); "
              "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'%d\\n' % os.getpid()); print('held', flush=True); "
              "time.sleep(60)")
    other = subprocess.Popen([sys.executable, "-c", holder, str(out / "run.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(TrainingError, match=f"in use by another run \\(process {other.pid}"):
            train(tiny(photos, out), log=quiet)
    finally:
        other.kill()
        other.wait()
    train(tiny(photos, out), log=quiet)  # the lock of a dead process is taken over
    assert (out / "checkpoint.h5").exists() and not (out / "run.lock").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_nan_weights_never_reach_disk(photos, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="NaN or infinite by step 1; nothing was saved and no checkpoint was "
                                            "written yet"):  # Adam's first step size lr / 0.1 overflows float32
        train(tiny(photos, out, iters=1, lr=1e38), log=quiet)
    assert not (out / "checkpoint.h5").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_an_exploding_loss_names_no_checkpoint_that_does_not_exist(photos, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="no checkpoint was written yet"):
        train(tiny(photos, out, iters=3, lr=1e38, val_every=100, checkpoint_every=100), log=quiet)
    assert not (out / "checkpoint.h5").exists()


def test_resume_takes_the_runs_options_and_refuses_conflicting_ones(photos, tmp_path):
    out = tmp_path / "run"
    train(tiny(photos, out, width=1 / 8, seed=3), log=quiet)
    resumed = TrainConfig(feature="hog", data=photos, out=str(out), iters=4, resume=True, workers=1)
    train(resumed, log=quiet)  # width 1/8, seed 3, batch 2, 64 px ... all from the run
    with h5py.File(out / "checkpoint.h5", "r") as f:
        assert f.attrs["step"] == 4
    for option, value in (("lr", 5e-4), ("seed", 0), ("width", 0.25), ("batch_size", 4), ("image_size", 128)):
        conflicting = TrainConfig(feature="hog", data=photos, out=str(out), iters=6, resume=True, workers=1,
                                  **{option: value})
        flag = "--" + option.replace("_", "-")
        with pytest.raises(TrainingError, match=f"--resume: {flag} .* differs from the run"):
            train(conflicting, log=quiet)


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--batch-size", "-3"], ["--iters", "0"], ["--iters", "-5"],
                                  ["--epochs", "0"], ["--width", "0"], ["--width", "-1"], ["--lr", "-1"],
                                  ["--lr", "nan"], ["--lr", "inf"], ["--image-size", "0"]])
def test_nonsense_arguments_are_refused_before_any_work(args, tmp_path):
    result = CliRunner().invoke(main, ["train", "hog", "--out", str(tmp_path / "run")] + args)
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kwargs", [dict(lr=float("nan")), dict(lr=-1.0), dict(betas=(1.0, 1.0)), dict(eps=-1.0)])
def test_adam_refuses_what_pytorch_refuses(kwargs):
    import nn
    with pytest.raises(ValueError, match="Adam"):
        nn.optim.Adam([nn.Tensor(np.zeros(2, np.float32), requires_grad=True)], **kwargs)


def test_resuming_a_finished_run_writes_valid_json_and_no_orphans_stay(photos, tmp_path):
    import json
    out = tmp_path / "run"
    train(tiny(photos, out), log=quiet)
    (out / ".tmp-abc123.h5").write_bytes(b"half a checkpoint from a killed run")
    summary = train(tiny(photos, out, resume=True), log=quiet)  # already at its last step
    assert summary["steps"] == 2
    json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    assert not (out / ".tmp-abc123.h5").exists()


# --- files are data, never pointers -----------------------------------------------------------

def _hostile(kind, tmp_path):
    """A checkpoint-like HDF5 file whose one dataset points outside the file (or claims to)."""
    path = tmp_path / f"{kind}.h5"
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(64, dtype=np.float32).tobytes())
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as g:
        g["w"] = np.ones(4, np.float32)
    with h5py.File(path, "w") as f:
        f.attrs["kind"] = "checkpoint"
        model = f.create_group("model")
        if kind == "external_storage":
            model.create_dataset("w", shape=(64,), dtype=np.float32, external=[(str(secret), 0, 256)])
        elif kind == "external_link":
            model["w"] = h5py.ExternalLink(str(other), "/w")
        elif kind == "soft_link":
            f["data"] = np.ones(4, np.float32)
            model["w"] = h5py.SoftLink("/data")
        elif kind == "virtual":
            layout = h5py.VirtualLayout(shape=(4,), dtype=np.float32)
            layout[:] = h5py.VirtualSource(str(other), "w", shape=(4,))
            model.create_virtual_dataset("w", layout)
        elif kind == "sparse":
            model.create_dataset("w", shape=(400_000_000,), dtype=np.float32, chunks=(1 << 16,))
    return path


@pytest.mark.parametrize("kind", ["external_storage", "external_link", "soft_link", "virtual", "sparse"])
def test_hdf5_files_that_point_outside_themselves_are_refused(kind, tmp_path):
    from nn.serialization import WeightFileError, open_h5
    path = _hostile(kind, tmp_path)
    with pytest.raises(WeightFileError, match=str(path).replace("/", ".") + ".*refused"):
        open_h5(path).close()
    result = CliRunner().invoke(main, ["reconstruct", "hog", SAMPLES[0], "--checkpoint", str(path),
                                       "--out", str(tmp_path / "r.png")])
    assert result.exit_code == 1 and "refused" in result.output and "Traceback" not in result.output


# --- photos that gave silently wrong data or hung ---------------------------------------------

def test_a_cmyk_jpeg_is_read_in_its_true_colours(tmp_path):
    from PIL import Image
    from models.data.images import read_image
    path = tmp_path / "cmyk.jpg"
    Image.new("RGB", (64, 48), (200, 40, 30)).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    image = read_image(str(path))
    assert image.shape == (48, 64, 3)
    assert np.abs(image.reshape(-1, 3).mean(axis=0) - (200, 40, 30)).max() < 12


def test_a_fifo_named_like_a_photo_is_skipped_not_waited_on(tmp_path):
    from models.data.images import ImageError, find_images, read_image
    shutil.copy(SAMPLES[0], tmp_path / "good.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    assert find_images(str(tmp_path)) == [str(tmp_path / "good.jpg")]
    with pytest.raises(ImageError, match="not a regular file"):
        read_image(str(tmp_path / "pipe.jpg"))


def test_a_huge_photo_is_refused_at_once(tmp_path):
    import time
    from PIL import Image
    from models.data.images import ImageError, read_image
    path = tmp_path / "huge.png"
    Image.new("RGB", (8000, 6000)).save(path)
    start = time.time()
    with pytest.raises(ImageError, match="8000x6000 pixels, more than the 40-megapixel limit"):
        read_image(str(path))
    assert time.time() - start < 5


# --- the library's edge cases -------------------------------------------------------------------

def test_library_edge_cases_give_results_or_clear_errors():
    import nn
    import nn.functional as F
    x0 = nn.Tensor(np.zeros((0, 3, 8, 8), np.float32))
    w = nn.Tensor(np.ones((4, 3, 3, 3), np.float32))
    assert F.conv2d(x0, w, padding=1).shape == (0, 4, 8, 8)
    assert F.conv_transpose2d(nn.Tensor(np.zeros((0, 4, 4, 4), np.float32)), w, stride=2, padding=1).shape \
        == (0, 3, 7, 7)
    x = nn.Tensor(np.ones((1, 3, 8, 8), np.float32))
    assert F.conv2d(x, w, stride=np.int64(2)).shape == (1, 4, 3, 3)
    with pytest.raises(ValueError, match="mse_loss: empty input"):
        F.mse_loss(nn.Tensor(np.zeros((0, 3), np.float32)), nn.Tensor(np.zeros((0, 3), np.float32)))
    ints = nn.Tensor(np.ones((1, 3, 4, 4), np.int64))
    for name, call in (("relu", F.relu), ("dropout", F.dropout), ("local_response_norm", lambda t: F.local_response_norm(t, 3)),
                       ("max_pool2d", lambda t: F.max_pool2d(t, 2))):
        with pytest.raises(ValueError, match=f"{name}: inputs must share one float dtype"):
            call(ints)
    with pytest.raises(ValueError, match="flatten: start_dim 5"):
        F.flatten(x, start_dim=5)
    for build, match in ((lambda: nn.Conv2d(0, 4, 3), "Conv2d: in_channels must be a positive int"),
                         (lambda: nn.Linear(0, 4), "Linear: in_features must be a positive int"),
                         (lambda: nn.ConvTranspose2d(3, 0, 4), "ConvTranspose2d: out_channels"),
                         (lambda: nn.optim.StepLR(nn.optim.SGD([nn.Tensor(np.zeros(1, np.float32),
                                                                          requires_grad=True)]), 0), "StepLR")):
        with pytest.raises(ValueError, match=match):
            build()


@pytest.mark.parametrize("args", [["invert-optimize", "conv3", "x.jpg", "--iters", "-1"],
                                  ["features", "hog", "x.jpg", "--out", "."],
                                  ["train", "hog", "--crops", "-2"], ["train", "hog", "--threads", "0"],
                                  ["train", "hog", "--min-scale", "0"], ["interpolate", "hog", "a.jpg", "b.jpg",
                                                                         "--checkpoint", "c.h5", "--steps", "1"]])
def test_other_commands_refuse_nonsense_arguments(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output


def test_unusable_files_are_left_out_before_the_validation_split(tmp_path):
    folder = tmp_path / "photos"
    sample_folder(folder, 6)
    for i in range(5):
        (folder / f"broken{i}.jpg").write_bytes(b"not a photo")
    lines = []
    summary = train(tiny(str(folder), tmp_path / "run"), log=lines.append)
    assert any("5 unusable file(s) left out" in line for line in lines)
    assert summary["photos"]["train"] + summary["photos"]["val"] == 6


def test_a_huge_error_message_is_cut(tmp_path):
    from cli import MAX_MESSAGE, _run
    from nn.errors import WeightFileError
    import click

    def fail():
        raise WeightFileError("x" * 10 ** 6)

    with pytest.raises(click.ClickException) as caught:
        _run(fail)
    assert len(caught.value.message) < MAX_MESSAGE + 100 and "more characters" in caught.value.message


def test_a_bit_flip_in_a_checkpoint_is_caught_by_its_checksum(photos, tmp_path):
    from nn.serialization import WeightFileError, open_h5
    out = tmp_path / "run"
    train(tiny(photos, out), log=quiet)
    path = out / "checkpoint.h5"
    with h5py.File(path, "r") as f:
        dataset = f["model/upconvJ6/weight"]
        offset, nbytes = dataset.id.get_offset(), dataset.id.get_storage_size()
    data = bytearray(path.read_bytes())
    data[offset + nbytes // 2] ^= 0x10  # one bit of one weight
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match="checksum mismatch"):
        open_h5(damaged).close()
    open_h5(path).close()  # the intact file passes


def test_a_full_disk_while_saving_keeps_the_last_checkpoint_and_resume_continues(photos, tmp_path):
    """A disk that holds the run up to its step-4 checkpoint but not the step-8 files: one clear
    error naming the disk, the step-4 checkpoint intact, no half-written file; on a disk with room,
    --resume finishes the run."""
    from tests.conftest import small_disk
    reference = tmp_path / "reference"
    train(tiny(photos, reference, iters=8, val_every=4, checkpoint_every=4), log=quiet)
    sizes = {name: os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(reference)
             for name in names}
    checkpoint = sizes["checkpoint.h5"]
    room = sum(sizes.values()) - sizes["checkpoint.h5"] - sizes["best.h5"] + 2.5 * checkpoint  # no room for a third copy
    with small_disk(tmp_path / "disk", room + (256 << 10)) as disk:
        out = disk / "run"
        with pytest.raises(TrainingError, match=r"the disk is full .* at step 8, so it was not written; .*checkpoint.h5 "
                                                r"\(an earlier step\) is kept: free some space and continue with --resume"):
            train(tiny(photos, out, iters=8, val_every=4, checkpoint_every=4), log=quiet)
        with h5py.File(out / "checkpoint.h5", "r") as f:
            assert f.attrs["step"] == 4
        assert not [n for _, _, names in os.walk(out) for n in names if n.startswith(".tmp-")]
        shutil.copytree(out, tmp_path / "moved")
    summary = train(tiny(photos, tmp_path / "moved", iters=8, val_every=4, checkpoint_every=4, resume=True), log=quiet)
    assert summary["steps"] == 8


@pytest.mark.parametrize("removed, load", [(["optimizer"], "resume"), (["model", "averaged"], "decoder")])
def test_a_checkpoint_missing_a_group_is_one_clear_error(photos, tmp_path, removed, load):
    """A hand-made checkpoint (sealed by hand) lacking a group that a loader reads: one WeightFileError
    naming the file and what to do, not a KeyError from inside h5py."""
    from models.training.checkpoint import load_checkpoint, load_decoder_weights
    from models.networks.decoders import build
    from nn.serialization import WeightFileError
    import nn
    out = tmp_path / "run"
    config = tiny(photos, out)
    train(config, log=quiet)
    path = tmp_path / "hand-made.h5"
    shutil.copy(out / "checkpoint.h5", path)
    with h5py.File(path, "a") as f:
        for group in removed:
            del f[group]
    seal_file(path)
    model = build("hog", config.width, config.image_size)
    if load == "resume":
        call, remedy = lambda: load_checkpoint(path, model, nn.optim.Adam(model.parameters())), "resume from another"
    else:
        call, remedy = lambda: load_decoder_weights(path, model), "re-create it"
    with pytest.raises(WeightFileError, match=f"hand-made.h5: malformed checkpoint .KeyError.*{remedy}"):
        call()
