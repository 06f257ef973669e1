"""Outputs as asked, and writable: ``--out`` writes the format its extension names, and an output
that cannot be written (an unknown extension, a missing or read-only folder, a folder given as the
file, a full disk) is one line naming the file and the fix, checked before any work."""
import glob
import os
import subprocess
import time

import pytest
from click.testing import CliRunner

from cli import main
from tests.conftest import small_disk

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))
HOG = os.path.join(ROOT, "models", "evaluation", "pretrained", "hog.h5")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny HOG training checkpoint (export-decoder's input)."""
    import nn
    from models.networks import decoders
    from models.training.checkpoint import save_checkpoint
    path = tmp_path_factory.mktemp("run") / "checkpoint.h5"
    model = decoders.build("hog", 1 / 16, 64, in_channels=31)
    config = {"feature": "hog", "width": 1 / 16, "image_size": 64, "feature_shape": [31, 8, 8], "feature_scale": 1.0}
    save_checkpoint(str(path), model, nn.optim.Adam(model.parameters()), 1, config)
    return str(path)


def commands(out, checkpoint):
    """Every command that writes a file, with ``out`` as that file."""
    return {"reconstruct": ["reconstruct", "hog", SAMPLES[0], "--out", out],
            "features": ["features", "hog", SAMPLES[0], "--out", out],
            "interpolate": ["interpolate", "hog", SAMPLES[0], SAMPLES[1], "--checkpoint", HOG, "--steps", "2", "--out", out],
            "perturb": ["perturb", "hog", SAMPLES[0], "--checkpoint", HOG, "--out", out],
            "random-features": ["random-features", "hog", "--checkpoint", HOG, "--data", os.path.dirname(SAMPLES[0]),
                                "--count", "2", "--out", out],
            "export-decoder": ["export-decoder", checkpoint, "--out", out]}


def invoke(args):
    start = time.time()
    result = CliRunner().invoke(main, args)
    return result, time.time() - start


@pytest.mark.parametrize("extension, magic", [(".png", b"\x89PNG"), (".jpg", b"\xff\xd8\xff"), (".JPEG", b"\xff\xd8\xff")])
def test_a_figure_is_written_in_the_format_its_extension_names(extension, magic, tmp_path):
    out = tmp_path / f"result{extension}"
    result, _ = invoke(["reconstruct", "hog", SAMPLES[0], "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)
    from PIL import Image
    with Image.open(out) as image:
        assert image.width >= 2 * 128  # labelled tiles of at least 128 px
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def test_features_write_hdf5_and_figures_refuse_arrays(tmp_path):
    import h5py
    result, _ = invoke(["features", "hog", SAMPLES[0], "--out", str(tmp_path / "f.hdf5")])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "f.hdf5") as f:
        assert f["features"].ndim == 3
    result, _ = invoke(["features", "hog", SAMPLES[0], "--out", str(tmp_path / "f.png")])
    assert result.exit_code == 2 and "unknown extension '.png'" in result.output and ".h5, .hdf5" in result.output


def bad_outputs(tmp_path):
    """(kind, path, what the message says) for every output that cannot be written."""
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=65536", "tmpfs", str(read_only)],
                             capture_output=True).returncode == 0
    cases = [("unknown extension", "result.txt", "unknown extension '.txt'"),
             ("missing folder", "missing/result", "does not exist; create it (mkdir -p"),
             ("folder as the file", ".", "is a folder; name a file in it")]
    if mounted:
        cases.append(("read-only folder", "read_only/result", "is not writable; write elsewhere"))
    return cases, (read_only if mounted else None)


@pytest.mark.parametrize("command", ["reconstruct", "features", "interpolate", "perturb", "random-features",
                                     "export-decoder"])
def test_an_output_that_cannot_be_written_is_one_line_before_any_work(command, checkpoint, tmp_path):
    cases, read_only = bad_outputs(tmp_path)
    try:
        for kind, name, says in cases:
            extension = {"features": ".h5", "export-decoder": ".h5"}.get(command, ".png")
            path = str(tmp_path / name) + (extension if name.endswith("result") else "")
            result, seconds = invoke(commands(path, checkpoint)[command])
            lines = [line for line in result.output.splitlines() if line.strip()]
            assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (kind, result.output)
            assert len(lines) == 1 and says in lines[0] and os.path.basename(path) in lines[0], (kind, result.output)
            assert seconds < 5, kind  # refused before the decoder or the photos are read
    finally:
        if read_only is not None:
            subprocess.run(["umount", str(read_only)], check=False)


@pytest.mark.parametrize("command", ["reconstruct", "features", "interpolate", "perturb", "random-features",
                                     "export-decoder"])
def test_a_full_disk_is_one_line_and_leaves_no_file(command, checkpoint, tmp_path):
    with small_disk(tmp_path / "disk", 16 << 10) as disk:
        (disk / "filler").write_bytes(b"\0" * (12 << 10))
        extension = ".h5" if command in ("features", "export-decoder") else ".png"
        out = disk / f"result{extension}"
        result, _ = invoke(commands(str(out), checkpoint)[command])
        lines = [line for line in result.output.splitlines() if line.strip() and "note:" not in line]
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert any("result" in line and "the disk is full" in line and "free some space" in line for line in lines), lines
        assert sorted(os.listdir(disk)) == ["filler"]
