"""Import AlexNet/CaffeNet weights from Caffe, PyTorch and ONNX files into our HDF5 weight file.

No foreign framework is needed: each format has a reader of its own here (``caffe``,
``torch_pickle``, ``onnx``, on top of ``protobuf_wire``). :func:`import_weights` detects the
format, names the tensors ``conv1`` .. ``conv5``, ``fc6`` .. ``fc8`` (``weight``/``bias``, PyTorch
layouts), checks them against the model (``architecture``) and can write them with
``nn.serialization.save_arrays``.
"""
import os

from .architecture import MODELS, check_model_name, check_tensors, infer_model, rename_torchvision
from .caffe import check_against_prototxt, drop_legacy_axes, read_caffemodel_layers, read_caffenet
from .common import WeightImportError, map_file
from .onnx import read_onnx
from .protobuf_wire import LEN, VARINT, Message
from .torch_pickle import ZIP_LOCAL_SIGNATURE, read_torch

__all__ = ["import_weights", "read_caffemodel_layers", "drop_legacy_axes", "detect_format", "WeightImportError", "FORMATS",
           "MODELS"]

FORMATS = ("caffe", "torch", "onnx")
FORMAT_DESCRIPTIONS = {"caffe": "Caffe caffemodel", "torch": "PyTorch torch.save state dict",
                       "onnx": "ONNX model"}
EXTENSIONS = {".caffemodel": "caffe", ".pth": "torch", ".pt": "torch", ".pkl": "torch", ".onnx": "onnx"}
PICKLE_PROTO = 0x80
ONNX_IR_VERSION, ONNX_GRAPH = 1, 7
CAFFE_LAYER, CAFFE_LAYERS_V1 = 100, 2


def detect_format(path, buffer=None):
    """``caffe``, ``torch`` or ``onnx``, from the content: a zip archive or a pickle is torch; a
    protobuf with an ir_version and a graph is ONNX, one with layers is Caffe. The extension
    decides only when the content does not."""
    if buffer is None:
        buffer = map_file(path)
    head = bytes(buffer[:4])
    if head == ZIP_LOCAL_SIGNATURE or (len(head) >= 2 and head[0] == PICKLE_PROTO and 2 <= head[1] <= 5):
        return "torch"
    try:
        fields = Message(buffer, file_name=os.fspath(path))
        if fields.has(ONNX_GRAPH, LEN) and fields.has(ONNX_IR_VERSION, VARINT):
            return "onnx"
        if fields.has(CAFFE_LAYER, LEN) or fields.has(CAFFE_LAYERS_V1, LEN):
            return "caffe"
    except WeightImportError:
        pass
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension in EXTENSIONS:
        return EXTENSIONS[extension]
    raise WeightImportError(f"{path}: cannot tell the format (not a zip or pickle, no ONNX graph, no Caffe "
                            "layers); pass format='caffe', 'torch' or 'onnx'")


def import_weights(path, format="auto", out=None, model=None, prototxt=None):
    """Read the AlexNet/CaffeNet weights of ``path``; return ``{"conv1.weight": float32 array, ...}``.

    format: ``auto`` (detect), ``caffe``, ``torch`` or ``onnx``.
    out: when given, an HDF5 file written with ``nn.serialization.save_arrays`` (groups ``conv1/weight``
        ..., root attributes ``model`` and ``source``).
    model: ``caffenet`` or ``alexnet_torchvision``; None infers it from conv2's groups.
    prototxt: for a caffemodel, a net definition the weights must match (types, num_output, kernel
        sizes, groups).
    Arrays may be read-only views of the memory-mapped file. Missing tensors and shapes that do not
    chain raise :class:`WeightImportError`; unexpected tensors give a warning and are left out.
    """
    if format not in ("auto",) + FORMATS:
        raise WeightImportError(f"unknown format {format!r}; choose auto, {', '.join(FORMATS)}")
    if model is not None:
        check_model_name(model)
    buffer = map_file(path)
    if format == "auto":
        format = detect_format(path, buffer)
    if prototxt is not None and format != "caffe":
        raise WeightImportError(f"a prototxt describes Caffe models; {path} is read as {format}")
    if format == "caffe":
        tensors, fallback = read_caffenet(path, buffer), "caffenet"
    elif format == "onnx":
        tensors, fallback = read_onnx(path, buffer), "caffenet"
    else:
        tensors = read_torch(path, buffer)
        fallback = "alexnet_torchvision" if tensors.keys() - rename_torchvision(tensors).keys() else "caffenet"
        tensors = rename_torchvision(tensors)
    model = model or infer_model(tensors, fallback)
    source = f"{os.path.basename(os.fspath(path))} ({FORMAT_DESCRIPTIONS[format]})"
    arrays = check_tensors(tensors, model, source)
    if prototxt is not None:
        check_against_prototxt(path, prototxt, model)
    if out is not None:
        from nn.serialization import save_arrays
        save_arrays(arrays, out, model=model, source=source)
    return arrays
