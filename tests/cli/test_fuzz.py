"""Mutation fuzzing of every file kind featinv reads (tests/reference/fuzz_files.py, in a child process with a
2 GiB memory limit): each damaged or hand-made file must load, or fail with one of the errors the
command line prints as one line (a UserError, or an OSError about the file: nn.errors.is_user_error);
never anything else (the command line shows those as bugs, with their traceback), never past the time
budget."""
import glob
import json
import os
import subprocess
import sys

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
WEIGHTS = os.path.join(TESTS, "fixtures", "weights")
CASES = 300


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """One valid file of each kind."""
    import nn
    from models.networks import decoders
    from models.data.extract import build_cache
    from models.training.checkpoint import save_checkpoint
    from models.data.encoders import Encoder
    from models.evaluation.pretrained import export_decoder
    root = tmp_path_factory.mktemp("fuzz")
    model = decoders.build("hog", 1 / 16, 64, in_channels=31)
    config = {"feature": "hog", "width": 1 / 16, "image_size": 64, "feature_shape": [31, 8, 8], "feature_scale": 1.0}
    save_checkpoint(str(root / "checkpoint.h5"), model, nn.optim.Adam(model.parameters()), 1, config)
    export_decoder(str(root / "checkpoint.h5"), str(root / "decoder.h5"))
    photos = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))
    build_cache(str(root / "cache"), photos[:3], Encoder("hog", 64, workers=1))
    build_cache(str(root / "cache_sparse"), photos[:3], Encoder("sift", 64, workers=1))  # SIFT: filled cells
    return {"checkpoint": root / "checkpoint.h5", "decoder": root / "decoder.h5", "cache": root / "cache" / "shard-00000.h5",
            "cache_sparse": root / "cache_sparse" / "shard-00000.h5",
            "photo": photos[0], "caffemodel": os.path.join(WEIGHTS, "caffenet_layer.caffemodel"),
            "pth": os.path.join(WEIGHTS, "alexnet_torchvision_zip.pth"),
            "onnx": os.path.join(WEIGHTS, "caffenet_zoo.onnx")}


@pytest.mark.parametrize("kind", ["checkpoint", "decoder", "cache", "cache_sparse", "photo", "caffemodel", "pth",
                                  "onnx"])
def test_damaged_files_fail_cleanly(kind, seeds, tmp_path):
    result = subprocess.run([sys.executable, os.path.join(TESTS, "reference", "fuzz_files.py"), kind, str(seeds[kind]),
                             str(tmp_path), "--cases", str(CASES)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    counts = report["counts"]
    assert counts["traceback"] == 0 and counts["slow"] == 0, report
    assert counts["clean"] > 0 and sum(counts.values()) == CASES


@pytest.mark.parametrize("kind", ["checkpoint", "decoder", "cache"])
def test_one_flipped_bit_is_refused_before_hdf5_parses_the_file(kind, seeds, tmp_path):
    """Any one bit of a sealed file flipped: refused by its seal, h5py never opens it (fuzz_files
    fails a case that reaches HDF5), within the time and memory budget."""
    cases = 100
    result = subprocess.run([sys.executable, os.path.join(TESTS, "reference", "fuzz_files.py"), kind, str(seeds[kind]),
                             str(tmp_path), "--cases", str(cases), "--bit-flips"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])["counts"]
    assert counts == {"ok": 0, "clean": cases, "traceback": 0, "slow": 0}, counts
