"""Files are verified before they are parsed, unsealed files are refused, and hostile files are
refused fast: one flipped bit, an unsealed or relabelled file, a FIFO given as a file, files that
declare far more work than they justify, and nesting deeper than any real file. Every case that
could hang runs in a child process with a timeout and a memory limit."""
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from nn.serialization import (SEAL_BYTES, WeightFileError, load_arrays, save_arrays, verify_seal)

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
SAMPLE = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))[0]
SHIPPED = os.path.join(ROOT, "models", "evaluation", "pretrained", "lbp.h5")
WEIGHTS = os.path.join(TESTS, "fixtures", "weights")


def in_child(code, timeout=60, memory_mb=2048):
    """Run ``code`` in a fresh interpreter (repository root, a memory limit); its last stdout line
    parsed as JSON. A hang fails the test at ``timeout`` instead of blocking it."""
    prelude = (f"import resource, sys, json; sys.path.insert(0, {ROOT!r}); "
               f"resource.setrlimit(resource.RLIMIT_AS, ({memory_mb << 20}, {memory_mb << 20}))\n")
    result = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- one flipped bit: refused on the raw bytes, before HDF5 parses anything ----------------------

def test_every_flipped_bit_of_a_shipped_decoder_is_refused_before_hdf5_parses_it(tmp_path):
    """Bits of the seal, of HDF5's structures (superblock, object headers, attributes) and of the
    weights: each flip is one WeightFileError, and h5py never opens the damaged file."""
    report = in_child(f"""
import time, numpy as np, h5py
import nn.serialization as s
data = open({SHIPPED!r}, "rb").read()
rng = np.random.default_rng(0)
bits = list(range(0, 8 * 600, 7)) + [int(b) for b in rng.integers(0, 8 * len(data), 150)]
opened = []
real = h5py.File
h5py.File = lambda *a, **k: opened.append(a[0]) or real(*a, **k)
path = {str(tmp_path / "flip.h5")!r}
counts = dict(tries=0, clean=0, traceback=0, slow=0, parsed=0, loaded=0)
for bit in bits:
    damaged = bytearray(data)
    damaged[bit // 8] ^= 1 << (bit % 8)
    open(path, "wb").write(damaged)
    counts["tries"] += 1
    before, start = len(opened), time.time()
    try:
        s.open_h5(path).close()
        counts["loaded"] += 1
    except s.WeightFileError:
        counts["clean"] += 1
    except Exception:
        counts["traceback"] += 1
    counts["parsed"] += len(opened) > before
    counts["slow"] += time.time() - start > 5
print(json.dumps(counts))
""", timeout=120)
    assert report["clean"] == report["tries"] > 200, report
    assert report["parsed"] == report["loaded"] == report["traceback"] == report["slow"] == 0, report


def test_a_flipped_bit_stops_reconstruct_at_once(tmp_path):
    damaged = tmp_path / "hog.h5"
    data = bytearray(open(SHIPPED, "rb").read())
    data[SEAL_BYTES + 200] ^= 0x04  # inside HDF5's root object header
    damaged.write_bytes(bytes(data))
    start = time.time()
    result = CliRunner().invoke(main, ["reconstruct", "lbp", SAMPLE, "--checkpoint", str(damaged),
                                       "--out", str(tmp_path / "r.png")])
    assert result.exit_code == 1 and "checksum mismatch" in result.output and str(damaged) in result.output
    assert time.time() - start < 10


# --- unsealed files are refused unless the caller names them foreign -----------------------------

def _unsealed_copy(tmp_path, name="plain.h5"):
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        f.attrs["format"], f.attrs["model"] = "featinv", "caffenet"
        f["conv1/weight"] = np.full((2, 3), -0.02, np.float32)
    return path


def test_an_unsealed_file_is_refused_with_the_file_and_the_fix(tmp_path):
    path = _unsealed_copy(tmp_path)
    with pytest.raises(WeightFileError) as caught:
        load_arrays(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and f"python3 cli.py seal {path}" in message
    arrays, _ = load_arrays(path, foreign=True)  # the caller says it comes from another tool
    assert arrays["conv1.weight"][0, 0] == np.float32(-0.02)
    result = CliRunner().invoke(main, ["seal", str(path)])
    assert result.exit_code == 0, result.output
    assert verify_seal(path) and load_arrays(path)[0]["conv1.weight"].tolist() == arrays["conv1.weight"].tolist()


def test_the_old_attribute_checksum_renamed_and_a_weight_flipped_is_never_loaded(tmp_path):
    """An older file whose ``sha256`` attribute became ``sha257`` and one of whose weights had an
    exponent bit flipped: refused by reconstruct, eval and train --resume alike."""
    old = tmp_path / "old.h5"
    with h5py.File(old, "w") as f:
        f.attrs["sha257"] = "0" * 64
        f.attrs["kind"] = "decoder"
        f["w"] = np.full(4, -0.02, np.float32)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(old, run / "checkpoint.h5")
    for args in (["reconstruct", "hog", SAMPLE, "--checkpoint", str(old), "--out", str(tmp_path / "r.png")],
                 ["eval", "hog", "--checkpoint", str(old), "--data", os.path.dirname(SAMPLE)],
                 ["train", "hog", "--out", str(run), "--resume", "--iters", "1"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code != 0 and "carries no featinv seal" in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_a_near_miss_of_the_seal_is_damage_even_for_a_foreign_reader(tmp_path):
    path = tmp_path / "w.h5"
    save_arrays({"a.b": np.ones(3, np.float32)}, path)
    data = bytearray(path.read_bytes())
    data[3] ^= 0x20  # one bit of the seal's first line
    path.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match="seal is damaged"):
        load_arrays(path, foreign=True)


def test_every_writer_seals_its_files(tmp_path):
    import nn
    from models.networks import decoders
    from models.data.extract import build_cache
    from models.training.checkpoint import save_checkpoint
    from models.data.encoders import Encoder
    from models.evaluation.pretrained import export_decoder
    import weights_import
    model = decoders.build("hog", 1 / 16, 64, in_channels=31)
    config = {"feature": "hog", "width": 1 / 16, "image_size": 64, "feature_shape": [31, 8, 8], "feature_scale": 1.0}
    save_checkpoint(str(tmp_path / "c.h5"), model, nn.optim.Adam(model.parameters()), 1, config)
    export_decoder(str(tmp_path / "c.h5"), str(tmp_path / "d.h5"))
    build_cache(str(tmp_path / "cache"), [SAMPLE], Encoder("hog", 64, workers=1))
    weights_import.import_weights(os.path.join(WEIGHTS, "caffenet_layer.caffemodel"), out=str(tmp_path / "i.h5"))
    nn.save(model.state_dict(), tmp_path / "m.h5")
    written = [tmp_path / n for n in ("c.h5", "d.h5", "i.h5", "m.h5")] + [tmp_path / "cache" / "shard-00000.h5"]
    shipped = [os.path.join(ROOT, "models", "evaluation", "pretrained", n) for n in ("hog.h5", "lbp.h5", "sift.h5")]
    fixtures = [os.path.join(TESTS, "fixtures", "alexnet", n) for n in ("caffenet_small.h5", "torchvision_small.h5")]
    for path in written + shipped + fixtures:
        assert verify_seal(path), path


def test_the_last_good_checkpoint_is_only_one_that_verifies(tmp_path):
    from models.training.train import TrainingRun
    run = TrainingRun.__new__(TrainingRun)
    run.ckpt_path = str(tmp_path / "checkpoint.h5")
    assert run.last_good() == "no checkpoint was written yet"
    save_arrays({"w": np.ones(4, np.float32)}, run.ckpt_path)
    assert run.last_good() == f"the last good checkpoint is {run.ckpt_path}"
    data = bytearray(open(run.ckpt_path, "rb").read())
    data[-1] ^= 1
    open(run.ckpt_path, "wb").write(bytes(data))
    assert "no good checkpoint is left" in run.last_good()


# --- FIFOs, devices and sockets given as files -----------------------------------------------------

def test_a_fifo_given_as_any_weight_or_checkpoint_path_is_refused_at_once(tmp_path):
    fifo = str(tmp_path / "pipe.h5")
    os.mkfifo(fifo)
    report = in_child(f"""
from nn.serialization import WeightFileError, load_arrays, open_h5, seal_file
import weights_import
from weights_import.caffe import read_prototxt_layers
from models.evaluation.inference import TrainedDecoder
calls = [lambda: open_h5({fifo!r}), lambda: load_arrays({fifo!r}, foreign=True), lambda: seal_file({fifo!r}),
         lambda: TrainedDecoder({fifo!r}, workers=1), lambda: weights_import.import_weights({fifo!r}),
         lambda: read_prototxt_layers({fifo!r}), lambda: open_h5("/dev/null")]
messages = []
for call in calls:
    try:
        call()
        messages.append("loaded")
    except ValueError as exc:
        messages.append(str(exc))
print(json.dumps(messages))
""", timeout=30)
    assert all("not a regular file" in m for m in report), report
    assert all(fifo in m for m in report[:-1]) and "a FIFO (named pipe)" in report[0] and "a character device" in report[-1]
    result = CliRunner().invoke(main, ["reconstruct", "hog", SAMPLE, "--checkpoint", fifo, "--out",
                                       str(tmp_path / "r.png")])
    assert result.exit_code == 1 and "is a FIFO (named pipe), not a regular file" in result.output


# --- budgets before work: hostile files refused fast -------------------------------------------------

def _timed_refusal(path, match, budget_s=3.0, **kwargs):
    report = in_child(f"""
import time, weights_import
start = time.time()
try:
    weights_import.import_weights({str(path)!r}, **{kwargs!r})
    outcome = "loaded"
except weights_import.WeightImportError as exc:
    outcome = str(exc)
print(json.dumps([outcome, time.time() - start]))
""", timeout=60, memory_mb=1024)
    message, seconds = report
    assert match in message and str(path) in message, message
    assert seconds < budget_s, report


def test_a_pickle_of_millions_of_trivial_opcodes_is_refused_fast(tmp_path):
    from weights_import.torch_pickle import MAX_PICKLE_OPCODES
    path = tmp_path / "ops.pth"
    path.write_bytes(b"\x80\x02" + b"N0" * (2 * MAX_PICKLE_OPCODES) + b"N.")  # legacy layout: a bare pickle
    _timed_refusal(path, f"more than {MAX_PICKLE_OPCODES:,} opcodes")


def _varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number, payload):
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_a_caffemodel_with_millions_of_packed_dimensions_is_refused_fast(tmp_path):
    dims = b"\x01" * 3_000_000  # a BlobShape (field 7 of BlobProto) declaring 3 million axes
    blob = _field(7, _field(1, dims))
    path = tmp_path / "dims.caffemodel"
    path.write_bytes(_field(100, _field(1, b"conv1") + _field(2, b"Convolution") + _field(7, blob)))
    _timed_refusal(path, "holds at least 300,000 integers, more than the 8")


def test_an_onnx_tensor_with_millions_of_packed_dimensions_is_refused_fast(tmp_path):
    tensor = _field(1, b"\x01" * 3_000_000) + _varint(2 << 3) + _varint(1) + _field(8, b"w")
    graph = _field(1, _field(1, b"x") + _field(1, b"w") + _field(4, b"Conv")) + _field(5, tensor)
    path = tmp_path / "dims.onnx"
    path.write_bytes(_varint(1 << 3) + _varint(7) + _field(7, graph))
    _timed_refusal(path, "holds at least 300,000 integers, more than the 8")


def test_a_deep_prototxt_is_refused_naming_the_file(tmp_path):
    from weights_import import WeightImportError
    from weights_import.caffe import read_prototxt_layers
    path = tmp_path / "deep.prototxt"
    path.write_text("layer " + "{ a " * 100_000 + "}" * 100_000)
    start = time.time()
    with pytest.raises(WeightImportError, match=f"{path}:1: .*nested more than 32 deep"):
        read_prototxt_layers(path)
    assert time.time() - start < 5


def test_deep_json_in_a_checkpoint_is_refused_naming_the_file(tmp_path):
    from models.training.checkpoint import read_config
    path = tmp_path / "deep.h5"
    save_arrays({"w": np.ones(2, np.float32)}, path, kind="checkpoint", config="[" * 100_000 + "]" * 100_000)
    start = time.time()
    with pytest.raises(WeightFileError, match=f"{path}: the attribute 'config' nests JSON more than 64 deep"):
        read_config(str(path))
    assert time.time() - start < 5
