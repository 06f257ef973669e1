"""Every command on the GPU: ``--device gpu`` and ``FEATINV_DEVICE=gpu``.

Without a GPU they run on the strict stand-in (tests/strict_device/cupy, see tests/conftest.py),
which refuses implicit host/device mixing as CuPy does; each test also checks that work really
went to the device (kernel launches were counted, or arrays came back from it).
"""
import glob
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from tests.conftest import CUPY, REAL_GPU, ROOT, sample_folder

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))
SMALL_CAFFENET = os.path.join(TESTS, "fixtures", "alexnet", "caffenet_small.h5")
RELEASED = os.path.join(TESTS, "fixtures", "weights", "released_conv5.caffemodel")
GPU = {"FEATINV_DEVICE": "gpu"}


def on_device(*args, env=None):
    """Run the command with the GPU chosen (``--device gpu`` or the environment); returns its output
    and asserts that it ran, and that it launched work on the device (on the stand-in)."""
    before = CUPY.counts()["launches"] if not REAL_GPU else 0
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    if not REAL_GPU:
        assert CUPY.counts()["launches"] > before, "nothing ran on the device"
    return result.output


@pytest.fixture(scope="module")
def gpu_runs(tmp_path_factory):
    """hog and fc8 decoders trained for 3 steps on the device, and a folder of 7 photos."""
    root = tmp_path_factory.mktemp("gpu")
    data = root / "photos"
    sample_folder(data, 7)
    tiny = ["--data", data, "--iters", 3, "--batch-size", 2, "--width", 0.0625, "--workers", 1]
    on_device("train", "hog", "--image-size", 64, "--out", root / "runs" / "hog", *tiny, env=GPU)
    on_device("train", "fc8", "--weights", SMALL_CAFFENET, "--out", root / "runs" / "fc8", "--device", "gpu", *tiny)
    return root, data, {name: root / "runs" / name / "checkpoint.h5" for name in ("hog", "fc8")}


def test_the_environment_variable_is_the_default_of_device(gpu_runs):
    root, _, ckpt = gpu_runs
    with h5py.File(ckpt["hog"], "r") as f:
        assert f.attrs["step"] == 3
    output = CliRunner().invoke(main, ["train", "--help"], env=GPU).output
    assert "FEATINV_DEVICE" in output


def test_resume_on_the_device(gpu_runs):
    root, data, _ = gpu_runs
    run = root / "resumed"
    tiny = ["--data", data, "--batch-size", 2, "--width", 0.0625, "--workers", 1, "--image-size", 64, "--out", run]
    on_device("train", "hog", "--iters", 2, "--ema", 0.9, *tiny, env=GPU)  # with a moving average of the weights
    on_device("train", "hog", "--iters", 4, "--resume", *tiny, env=GPU)
    with h5py.File(run / "checkpoint.h5", "r") as f:
        assert f.attrs["step"] == 4 and "averaged" in f


def test_eval_reconstruct_and_features_on_the_device(gpu_runs, tmp_path):
    _, data, ckpt = gpu_runs
    assert "| decoder |" in on_device("eval", "hog", "--checkpoint", ckpt["hog"], "--data", data, env=GPU)
    on_device("reconstruct", "hog", *SAMPLES[:2], "--checkpoint", ckpt["hog"], "--baselines",
              "--out", tmp_path / "r.png", env=GPU)
    assert (tmp_path / "r.png").exists()
    on_device("features", "conv3", SAMPLES[0], "--weights", SMALL_CAFFENET, "--out", tmp_path / "f.h5", env=GPU)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert len(f) > 0


def test_inspect_and_gradcheck_on_the_device(gpu_runs):
    _, _, ckpt = gpu_runs
    assert "upconvJ6" in on_device("inspect", "hog", "--checkpoint", ckpt["hog"], "--image", SAMPLES[0], env=GPU)
    assert "conv5" in on_device("inspect", "caffenet", "--weights", SMALL_CAFFENET, "--image", SAMPLES[0], env=GPU)
    assert "| ok |" in on_device("gradcheck", "hog", env=GPU)


def test_import_a_released_decoder_on_the_device(tmp_path):
    """A conversion on the host, in a fresh process with FEATINV_DEVICE=gpu: the decoder it builds
    must stay on the host (it was built on the device and handed to np.asarray)."""
    out = tmp_path / "decoder.h5"
    result = subprocess.run([sys.executable, "cli.py", "import-weights", RELEASED, "--decoder", "conv5",
                             "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, **GPU))
    assert result.returncode == 0, result.stdout + result.stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["model"] == "decoder/conv5"


def test_every_analysis_on_the_device(gpu_runs, tmp_path):
    root, data, ckpt = gpu_runs
    on_device("perturb", "hog", *SAMPLES[:2], "--checkpoint", ckpt["hog"], "--out", tmp_path / "p.png", env=GPU)
    on_device("dark-knowledge", *SAMPLES[:2], "--checkpoint", ckpt["fc8"], "--out", tmp_path / "d.png", env=GPU)
    on_device("single-neuron", "--checkpoint", ckpt["fc8"], "--index", 3, "--out", tmp_path / "s.png", env=GPU)
    on_device("interpolate", "hog", SAMPLES[0], SAMPLES[1], "--checkpoint", ckpt["hog"], "--steps", 3,
              "--out", tmp_path / "i.png", env=GPU)
    on_device("random-features", "fc8", "--checkpoint", ckpt["fc8"], "--data", data, "--count", 2,
              "--out", tmp_path / "rf.png", env=GPU)
    on_device("invert-optimize", "conv3", SAMPLES[0], "--weights", SMALL_CAFFENET, "--iters", 3,
              "--out", tmp_path / "o.png", env=GPU)
    on_device("report", "--runs", root / "runs", "--data", data, "--out", tmp_path / "report",
              "--with-optimization", 2, "--optimization-iters", 2, env=GPU)


@pytest.mark.skipif(REAL_GPU, reason="a real GPU is here: the stand-in is not used")
def test_a_command_process_imports_the_stand_in():
    """The commands started by tests (and CI) find the stand-in through PYTHONPATH."""
    probe = subprocess.run([sys.executable, "-c", "import cupy, nn; print(cupy.__version__, "
                            "nn.to_device(nn.to_numpy([1.0]), 'gpu').__class__.__module__)"],
                           capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["0.0-strict-stand-in", "cupy"]


# --- what a training step costs on the device (counted on the stand-in) ------------------------

@pytest.mark.skipif(REAL_GPU, reason="synchronisations are counted by the stand-in")
def test_at_most_one_sync_per_logged_step(tmp_path):
    """The loss stays on the device and is read back every log_every steps: training steps in
    between never wait for the device."""
    from models.training.train import TrainConfig, train
    syncs = {}

    def record(step):
        syncs[step] = CUPY.counts()["syncs"]

    cfg = TrainConfig(feature="hog", data=str(sample_folder(tmp_path / "photos", 8)), out=str(tmp_path / "run"), iters=24, batch_size=2,
                      width=1 / 16, image_size=64, val_every=100, checkpoint_every=100, log_every=5, workers=1,
                      crops=0, device="gpu")
    train(cfg, log=lambda *_: None, on_step=record)
    per_step = {s: syncs[s + 1] - syncs[s] for s in range(1, 23)}  # step s's reading + step s+1's work
    assert per_step == {s: 1 if s % 5 == 0 else 0 for s in range(1, 23)}, per_step


def test_a_stopped_run_leaves_no_prefetch_thread(tmp_path):
    from models.training.train import Prefetcher
    made = []
    prefetch = Prefetcher(lambda step: made.append(step) or (np.zeros(1, np.float32),), range(1000))
    assert prefetch.next("gpu")[0] == 0
    prefetch.close()
    assert not prefetch.thread.is_alive() and len(made) < 10
