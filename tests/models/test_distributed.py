"""Data-parallel training on MPI (models/training/distributed.py): ``mpirun -n 2`` with batch B per rank
trains the same weights as one process with batch 2B. Skipped, with the reason, where mpirun or
mpi4py is missing (`.ci/run` installs both)."""
import glob
import importlib.util
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from tests.conftest import sample_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))
MPIRUN = shutil.which("mpirun")
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
pytestmark = pytest.mark.skipif(not (MPIRUN and HAVE_MPI4PY),
                                reason="needs mpirun and mpi4py (pip install 'featinv[cluster]', apt-get install "
                                       "openmpi-bin)")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none")


def weights(run):
    with h5py.File(run / "checkpoint.h5", "r") as f:
        out = {}
        f["model"].visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                              else None)
        return out, int(f.attrs["step"])


def one_process_and_two_ranks(tmp_path, iters, env=ENV):
    """Train the same tiny HOG decoder as one process with batch 4 (``tmp_path/one``) and as 2
    ranks of mpirun with batch 2 each (``tmp_path/two``); returns mpirun's stdout."""
    photos = tmp_path / "photos"
    sample_folder(photos, 8)
    common = ["cli.py", "train", "hog", "--data", str(photos), "--iters", str(iters), "--width", "0.0625",
              "--image-size", "64", "--workers", "1", "--crops", "2", "--grad-clip", "50"]
    single = subprocess.run([sys.executable] + common + ["--batch-size", "4", "--out", str(tmp_path / "one")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    pair = subprocess.run([MPIRUN, "-n", "2", sys.executable] + common + ["--batch-size", "2", "--out",
                                                                          str(tmp_path / "two")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert pair.returncode == 0, pair.stdout[-2000:] + pair.stderr[-2000:]
    return pair.stdout


def test_two_ranks_with_batch_b_train_as_one_process_with_batch_2b(tmp_path):
    stdout = one_process_and_two_ranks(tmp_path, 4)
    one, step_one = weights(tmp_path / "one")
    two, step_two = weights(tmp_path / "two")
    assert step_one == step_two == 4 and one.keys() == two.keys()
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert stdout.count("done: 4 steps") == 1  # rank 0 alone reports
    # --resume under mpirun continues as the single process does
    more = ["--iters", "6", "--resume", "--workers", "1"]
    single = subprocess.run([sys.executable, "cli.py", "train", "hog", "--out", str(tmp_path / "one")] + more,
                            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    pair = subprocess.run([MPIRUN, "-n", "2", sys.executable, "cli.py", "train", "hog", "--out", str(tmp_path / "two")]
                          + more, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0 and pair.returncode == 0, single.stderr[-1000:] + pair.stderr[-1000:]
    one, step_one = weights(tmp_path / "one")
    two, step_two = weights(tmp_path / "two")
    assert step_one == step_two == 6
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_an_epoch_counts_the_global_batch(tmp_path):
    """With --epochs, 2 ranks x batch 2 take the steps of one process with batch 4: 8 photos, 5 held
    out, 3 x 2 crops = 6 samples: 2 steps (not the 3 of batch 2)."""
    photos = tmp_path / "photos"
    sample_folder(photos, 8)
    pair = subprocess.run([MPIRUN, "-n", "2", sys.executable, "cli.py", "train", "hog", "--data", str(photos),
                           "--epochs", "1", "--width", "0.0625", "--image-size", "64", "--workers", "1", "--crops", "2",
                           "--batch-size", "2", "--out", str(tmp_path / "two")],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert pair.returncode == 0, pair.stdout[-2000:] + pair.stderr[-2000:]
    assert weights(tmp_path / "two")[1] == 2


def test_on_gpus_nccl_all_reduces_on_the_device(tmp_path):
    """--device gpu under mpirun: the gradients go through NCCL (CuPy's bindings; on the strict
    stand-in where no GPU is usable, an NCCL that sums through MPI on its host memory), and 2 ranks
    with batch 2 train what one process with batch 4 trains on the same device."""
    from tests.conftest import REAL_GPU
    log = tmp_path / "nccl.log"
    one_process_and_two_ranks(tmp_path, 3, env=dict(ENV, FEATINV_DEVICE="gpu", STRICT_CUPY_NCCL_LOG=str(log)))
    one, _ = weights(tmp_path / "one")
    two, step = weights(tmp_path / "two")
    assert step == 3
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-6, err_msg=name)
    if not REAL_GPU:
        calls = log.read_text().splitlines()
        assert len(calls) == 2 * 3 and {c.split()[2] for c in calls} == {"0", "1"}  # one per rank and step
