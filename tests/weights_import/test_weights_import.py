"""weights_import: Caffe, PyTorch and ONNX files written by the real tools import to the same arrays.

The fixtures under tests/fixtures/weights/ come from tests/reference/make_weight_fixtures.py (torch, onnx,
protobuf); these tests need none of those packages.
"""
import io
import os
import pickle
import re
import shutil
import sys
import warnings
import zipfile

import numpy as np
import pytest

from weights_import import WeightImportError, detect_format, import_weights, read_caffemodel_layers
from weights_import.architecture import check_tensors
from weights_import.protobuf_wire import Message, read_varint

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "weights")
FILES = {  # fixture -> (format, model)
    "caffenet_layer.caffemodel": ("caffe", "caffenet"),
    "caffenet_v1.caffemodel": ("caffe", "caffenet"),
    "caffenet_zoo.onnx": ("onnx", "caffenet"),
    "alexnet_torchvision.onnx": ("onnx", "alexnet_torchvision"),
    "alexnet_torchvision_zip.pth": ("torch", "alexnet_torchvision"),
    "alexnet_torchvision_legacy.pth": ("torch", "alexnet_torchvision"),
}


def fixture(name):
    return os.path.join(FIXTURES, name)


def expected(model):
    with np.load(fixture(f"expected_{model}.npz")) as data:
        return dict(data)


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_format_imports_the_written_arrays_exactly(name):
    file_format, model = FILES[name]
    assert detect_format(fixture(name)) == file_format
    arrays = import_weights(fixture(name))
    reference = expected(model)
    assert list(arrays) == list(reference)
    for key, array in arrays.items():
        assert array.dtype == np.float32 and array.shape == reference[key].shape, key
        np.testing.assert_array_equal(array, reference[key], err_msg=key)


@pytest.mark.parametrize("name", ["caffenet_v1.caffemodel", "caffenet_zoo.onnx", "alexnet_torchvision_legacy.pth"])
def test_the_content_not_the_extension_decides_the_format(name, tmp_path):
    renamed = tmp_path / "weights.bin"
    shutil.copy(fixture(name), renamed)
    assert detect_format(renamed) == FILES[name][0]
    np.testing.assert_array_equal(import_weights(renamed)["fc8.weight"], expected(FILES[name][1])["fc8.weight"])


@pytest.mark.parametrize("name", ["caffenet_layer.caffemodel", "alexnet_torchvision_zip.pth"])
def test_hdf5_output_reads_back_with_names_and_attributes(name, tmp_path):
    from nn.serialization import load_arrays

    out = tmp_path / "weights.h5"
    file_format, model = FILES[name]
    import_weights(fixture(name), format=file_format, out=out)
    arrays, attrs = load_arrays(out)
    reference = expected(model)
    assert sorted(arrays) == sorted(reference)
    for key in reference:
        np.testing.assert_array_equal(arrays[key], reference[key])
    assert attrs["model"] == model
    assert attrs["format"] == "featinv"
    assert name in attrs["source"] and {"caffe": "Caffe", "torch": "PyTorch"}[file_format] in attrs["source"]


def test_prototxt_must_match_the_caffemodel(tmp_path):
    import_weights(fixture("caffenet_v1.caffemodel"), prototxt=fixture("caffenet.prototxt"))
    text = open(fixture("caffenet.prototxt")).read()
    wrong = tmp_path / "wrong.prototxt"
    wrong_group = re.sub(r'(name: "conv4".*?group: )2', r"\g<1>1", text, count=1, flags=re.S)
    wrong.write_text(wrong_group.replace("num_output: 32", "num_output: 33", 1))
    with pytest.raises(WeightImportError) as error:
        import_weights(fixture("caffenet_layer.caffemodel"), prototxt=wrong)
    assert "conv4: group 1 in the prototxt, caffenet has 2" in str(error.value)
    assert "fc6: num_output 33" in str(error.value)
    broken = tmp_path / "broken.prototxt"
    broken.write_text(text.replace("}", "", 1) + "\n}\n}")
    with pytest.raises(WeightImportError, match="broken.prototxt:"):
        import_weights(fixture("caffenet_layer.caffemodel"), prototxt=broken)


def test_explicit_model_that_does_not_fit_names_layer_and_both_shapes():
    with pytest.raises(WeightImportError) as error:
        import_weights(fixture("alexnet_torchvision_zip.pth"), model="caffenet")
    message = str(error.value)
    assert "conv2.weight shape (16, 8, 5, 5) does not follow conv1.weight shape (8, 3, 11, 11)" in message
    assert "groups 2" in message


def test_shape_mismatch_names_layer_and_both_shapes():
    tensors = expected("caffenet")
    tensors["conv3.weight"] = np.zeros((24, 12, 3, 3), np.float32)
    with pytest.raises(WeightImportError, match=r"conv3\.weight shape \(24, 12, 3, 3\) does not follow "
                                                r"conv2\.weight shape \(16, 4, 5, 5\)"):
        check_tensors(tensors, "caffenet", "test")
    tensors = expected("caffenet")
    tensors["fc6.weight"] = np.zeros((32, 100), np.float32)
    with pytest.raises(WeightImportError, match=r"fc6\.weight shape \(32, 100\) does not follow conv5\.weight "
                                                r"shape \(16, 12, 3, 3\): expected \(out, 576\)"):
        check_tensors(tensors, "caffenet", "test")
    tensors = expected("caffenet")
    tensors["fc7.bias"] = np.zeros(5, np.float32)
    with pytest.raises(WeightImportError, match=r"fc7\.bias has shape \(5,\), but fc7\.weight shape \(32, 32\)"):
        check_tensors(tensors, "caffenet", "test")


def test_missing_and_unexpected_tensors_are_listed():
    tensors = expected("alexnet_torchvision")
    del tensors["fc8.bias"], tensors["conv1.weight"]
    tensors["fc9.weight"] = np.zeros(3, np.float32)
    with pytest.raises(WeightImportError) as error:
        check_tensors(tensors, "alexnet_torchvision", "test")
    assert "missing tensors conv1.weight, fc8.bias; unexpected tensors fc9.weight" in str(error.value)
    tensors = expected("alexnet_torchvision")
    tensors["features.1.num_batches_tracked"] = 3
    with pytest.warns(UserWarning, match="ignoring unexpected tensors features.1.num_batches_tracked"):
        arrays = check_tensors(tensors, "alexnet_torchvision", "test")
    assert "features.1.num_batches_tracked" not in arrays


def test_read_caffemodel_layers_keeps_file_order_types_and_deconvolution_layout():
    with np.load(fixture("expected_decoder.npz")) as reference:
        layers = read_caffemodel_layers(fixture("decoder.caffemodel"))
        assert [name for name, _, _ in layers] == list(reference["layer_names"])
        assert [layer_type for _, layer_type, _ in layers] == list(reference["layer_types"])
        for name, _, blobs in layers:
            for index, blob in enumerate(blobs):
                np.testing.assert_array_equal(blob, reference[f"{name}/{index}"])  # conv1: double_data
    assert dict((n, [b.shape for b in bl]) for n, _, bl in layers)["deconv1"] == [(4, 3, 4, 4), (3,)]
    v1_types = {name: layer_type for name, layer_type, _ in read_caffemodel_layers(fixture("caffenet_v1.caffemodel"))}
    assert v1_types["conv1"] == "Convolution" and v1_types["fc6"] == "InnerProduct" and v1_types["norm1"] == "LRN"


class RunsCode:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_files(tmp_path):
    payload = RunsCode()
    payload.marker = tmp_path / "marker"
    data = pickle.dumps({"conv1.weight": payload}, protocol=2)
    plain = tmp_path / "hostile.pth"
    plain.write_bytes(data)
    zipped = tmp_path / "hostile_zip.pth"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("hostile_zip/data.pkl", data)
        archive.writestr("hostile_zip/byteorder", "little")
    first_pickle = tmp_path / "hostile_magic.pth"
    first_pickle.write_bytes(pickle.dumps(payload, protocol=2))
    return [plain, zipped, first_pickle], payload.marker


def test_hostile_pickle_is_refused_without_running(tmp_path):
    files, marker = hostile_files(tmp_path)
    for path in files:
        with pytest.raises(WeightImportError, match=r"refusing to load the global (posix|os|nt)\.system"):
            import_weights(path)
        assert str(path) in str(pytest.raises(WeightImportError, import_weights, path).value)
    assert not marker.exists()


def test_truncated_or_garbage_protobuf_names_file_and_byte_offset(tmp_path):
    data = open(fixture("caffenet_layer.caffemodel"), "rb").read()
    truncated = tmp_path / "truncated.caffemodel"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(WeightImportError, match=r"truncated\.caffemodel: corrupt or truncated protobuf data at "
                                                r"byte \d+: field 100 runs past the end"):
        import_weights(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(bytes([0x0F]) + bytes(range(256)))
    with pytest.raises(WeightImportError, match=r"garbage\.onnx: corrupt or truncated protobuf data at byte 0: "
                                                r"field 1 has wire type 7"):
        import_weights(garbage)
    unknown = tmp_path / "unknown.bin"
    unknown.write_bytes(b"\x00\x01\x02")
    with pytest.raises(WeightImportError, match="cannot tell the format"):
        import_weights(unknown)


def test_wire_reader_varints_signed_and_packed_or_unpacked_repeats():
    minus_one = bytes([0xFF] * 9 + [0x01])
    assert read_varint(minus_one, 0, 10, "x") == (2 ** 64 - 1, 10)
    # field 1 unpacked -1, field 1 packed [300, 2]; field 2 two unpacked floats then a packed one
    floats = np.array([1.5, -2.0, 4.25], "<f4").tobytes()
    message = Message(b"\x08" + minus_one + b"\x0a\x03\xac\x02\x02" + b"\x15" + floats[:4] + b"\x15" + floats[4:8]
                      + b"\x12\x04" + floats[8:])
    assert message.repeated_ints(1, 3) == [-1, 300, 2]
    np.testing.assert_array_equal(message.repeated_fixed(2, np.float32), [1.5, -2.0, 4.25])
    with pytest.raises(WeightImportError, match="at byte 0: varint longer than 10 bytes"):
        read_varint(b"\xff" * 11, 0, 11, "x")


FUZZ_FIXTURES = sorted(FILES) + ["decoder.caffemodel"]


@pytest.mark.parametrize("name", FUZZ_FIXTURES)
def test_fuzzed_files_fail_only_with_weight_import_error(name, tmp_path):
    rng = np.random.default_rng(sum(map(ord, name)))
    original = np.fromfile(fixture(name), np.uint8)
    path = tmp_path / name
    read = read_caffemodel_layers if name == "decoder.caffemodel" else import_weights
    # flips land mostly in the structure (the first and last KB), where they do the most damage
    structure = np.r_[0:min(1024, original.size), max(0, original.size - 1024):original.size]
    for trial in range(300):
        data = original.copy()
        if trial % 5 == 4:
            data = data[:rng.integers(0, data.size)]
        else:
            where = rng.choice(structure, size=rng.integers(1, 4))
            data[where] ^= rng.integers(1, 256, size=where.size, dtype=np.uint8)
        data.tofile(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                read(path)
            except WeightImportError:
                pass


def expanded_view_pth(path, monkeypatch):
    """A 1.5 KB .pth whose one tensor is a 100000 x 100000 view, stride 0, of a 4-element storage."""
    import collections
    import types
    torch_module, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: only pickled")

    class FloatStorage:
        pass

    _rebuild_tensor_v2.__module__, FloatStorage.__module__ = "torch._utils", "torch"
    _rebuild_tensor_v2.__qualname__, FloatStorage.__qualname__ = "_rebuild_tensor_v2", "FloatStorage"
    utils._rebuild_tensor_v2, torch_module.FloatStorage, torch_module._utils = _rebuild_tensor_v2, FloatStorage, utils
    monkeypatch.setitem(sys.modules, "torch", torch_module)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            return _rebuild_tensor_v2, (Storage(), 0, (100000, 100000), (0, 0), False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", FloatStorage, "0", "cpu", 4) if isinstance(obj, Storage) else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(collections.OrderedDict([("features.0.weight", Tensor())]))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("expanded/data.pkl", buffer.getvalue())
        archive.writestr("expanded/byteorder", "little")
        archive.writestr("expanded/data/0", np.zeros(4, np.float32).tobytes())


def test_an_expanded_view_is_refused_before_it_is_written_out(tmp_path, monkeypatch):
    path = tmp_path / "expanded.pth"
    expanded_view_pth(path, monkeypatch)
    monkeypatch.undo()
    with pytest.raises(WeightImportError, match="10,000,000,000 elements but views only 4 .* expanded view, refused"):
        import_weights(path, out=tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_a_persistent_id_built_as_a_dag_is_refused_at_once(tmp_path):
    """A tiny pickle whose persistent id is a list of lists sharing themselves: its repr would
    have 2**40 parts."""
    import time
    shared = []
    for _ in range(40):
        shared = [shared, shared]

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return shared if obj == "storage" else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"conv1.weight": "storage"})
    path = tmp_path / "dag.pth"
    path.write_bytes(buffer.getvalue())
    assert path.stat().st_size < 2000
    start = time.time()
    with pytest.raises(WeightImportError, match="unsupported persistent id"):
        import_weights(path)
    assert time.time() - start < 5


def test_a_build_opcode_on_an_allowed_global_is_refused_and_undone(tmp_path):
    """GLOBAL torch._utils._rebuild_tensor_v2 (our function) or torch.FloatStorage, then BUILD
    (None, {...}): setattr on the shared object itself, which would poison every later file."""
    from weights_import import torch_pickle
    function = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x08\x00\x00\x00poisonedK\x01s\x86b."
    path = tmp_path / "poison.pth"
    path.write_bytes(function)
    with pytest.raises(WeightImportError, match="changes an allowed global"):
        import_weights(path)
    assert not hasattr(torch_pickle._rebuild_tensor, "poisoned")
    storage = b"\x80\x02ctorch\nFloatStorage\nN}X\x05\x00\x00\x00dtypeX\x02\x00\x00\x00u1s\x86b."
    path.write_bytes(storage)
    with pytest.raises(WeightImportError):
        import_weights(path)
    assert torch_pickle.SAFE_GLOBALS[("torch", "FloatStorage")].dtype == np.float32
    assert import_weights(fixture("alexnet_torchvision_zip.pth"))["conv1.weight"].dtype == np.float32


def _peak_bytes(call):
    """Peak Python-allocated bytes while ``call()`` runs (numpy and zlib buffers included)."""
    import tracemalloc
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _deflated_copy(source, path, replace=None):
    """A copy of the zip ``source`` with every member deflated; ``replace``: {member name ending: bytes}."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            for ending, new in (replace or {}).items():
                if info.filename.endswith(ending):
                    data = new
            zout.writestr(info.filename, data)


def test_deflated_members_are_read(tmp_path):
    path = tmp_path / "deflated.pth"
    _deflated_copy(fixture("alexnet_torchvision_zip.pth"), path)
    ours = import_weights(path)
    reference = import_weights(fixture("alexnet_torchvision_zip.pth"))
    assert all(np.array_equal(ours[k], reference[k]) for k in reference)


def test_a_zip_bomb_is_refused_before_it_expands(tmp_path):
    """A storage member of 256 MB of zeros deflates to about 250 KB: it is refused from its header,
    without being decompressed (a 1.5 MB file can declare gigabytes)."""
    with zipfile.ZipFile(fixture("alexnet_torchvision_zip.pth")) as z:
        storage = next(i.filename for i in z.infolist() if "/data/" in i.filename)
    path = tmp_path / "bomb.pth"
    _deflated_copy(fixture("alexnet_torchvision_zip.pth"), path, {storage: bytes(256 << 20)})
    assert path.stat().st_size < 2 << 20

    def load():
        with pytest.raises(WeightImportError, match="storage .* holds 268,435,456 bytes, the pickle says"):
            import_weights(path)
    assert _peak_bytes(load) < 32 << 20
    pickle_member = "data.pkl"
    _deflated_copy(fixture("alexnet_torchvision_zip.pth"), path, {pickle_member: bytes(256 << 20)})

    def load_pickle():
        with pytest.raises(WeightImportError, match="expands from .* a zip bomb"):
            import_weights(path)
    assert _peak_bytes(load_pickle) < 32 << 20


@pytest.mark.parametrize("suffix", [".caffemodel", ".onnx"])
def test_a_file_of_millions_of_tiny_fields_is_refused_within_memory(tmp_path, suffix):
    """30 MB of two-byte varint fields (15 million): indexing them took 0.7-1.5 GB; now the field
    budget stops the scan early."""
    from weights_import.protobuf_wire import MAX_FIELDS
    path = tmp_path / f"fields{suffix}"
    path.write_bytes(b"\x08\x01" * (15 << 20))

    def load():
        with pytest.raises(WeightImportError, match=f"more than {MAX_FIELDS:,} fields"):
            import_weights(path, format="caffe" if suffix == ".caffemodel" else "onnx")
    assert _peak_bytes(load) < 160 << 20
