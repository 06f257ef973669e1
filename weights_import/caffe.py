"""Caffe ``.caffemodel`` (binary ``NetParameter``) and ``.prototxt`` (text format), read without Caffe.

Field numbers, from BVLC/caffe ``src/caffe/proto/caffe.proto``:

- ``NetParameter``: name 1, layer 100 (``LayerParameter``), layers 2 (``V1LayerParameter``, the
  format before 2015, still used by ``bvlc_reference_caffenet.caffemodel``).
- ``LayerParameter``: name 1, type 2 (a string such as ``"Convolution"``), blobs 7.
- ``V1LayerParameter``: name 4, type 5 (enum ``LayerType``, see :data:`V1_LAYER_TYPES`), blobs 6.
- ``BlobProto``: shape 7 (``BlobShape``: dim 1, packed int64), data 5 (packed float),
  double_data 8 (packed double); older files give the 4-D shape as num 1, channels 2, height 3,
  width 4 instead of ``shape``.

Blob layouts: Convolution weight ``(out, in/groups, kh, kw)``; InnerProduct ``(out, in)``, or
``(1, 1, out, in)`` in legacy 4-D files; Deconvolution ``(in, out/groups, kh, kw)``, the layout of
PyTorch's ``ConvTranspose2d``; bias ``(out,)``, or ``(1, 1, 1, out)`` in legacy files.
"""
import os
import re

import numpy as np

from . import architecture
from .common import MAX_DIMS, WeightImportError, check_regular_file, map_file
from .protobuf_wire import Message

NET_LAYER, NET_LAYERS_V1 = 100, 2
LAYER_NAME, LAYER_TYPE, LAYER_BLOBS = 1, 2, 7
V1_NAME, V1_TYPE, V1_BLOBS = 4, 5, 6
BLOB_LEGACY_DIMS = (1, 2, 3, 4)  # num, channels, height, width
BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE_DATA = 5, 7, 8
SHAPE_DIM = 1

# V1LayerParameter.LayerType: number -> (enum name, the type string Caffe upgrades it to)
V1_LAYER_TYPES = {
    0: ("NONE", ""), 1: ("ACCURACY", "Accuracy"), 2: ("BNLL", "BNLL"), 3: ("CONCAT", "Concat"),
    4: ("CONVOLUTION", "Convolution"), 5: ("DATA", "Data"), 6: ("DROPOUT", "Dropout"),
    7: ("EUCLIDEAN_LOSS", "EuclideanLoss"), 8: ("FLATTEN", "Flatten"), 9: ("HDF5_DATA", "HDF5Data"),
    10: ("HDF5_OUTPUT", "HDF5Output"), 11: ("IM2COL", "Im2col"), 12: ("IMAGE_DATA", "ImageData"),
    13: ("INFOGAIN_LOSS", "InfogainLoss"), 14: ("INNER_PRODUCT", "InnerProduct"), 15: ("LRN", "LRN"),
    16: ("MULTINOMIAL_LOGISTIC_LOSS", "MultinomialLogisticLoss"), 17: ("POOLING", "Pooling"),
    18: ("RELU", "ReLU"), 19: ("SIGMOID", "Sigmoid"), 20: ("SOFTMAX", "Softmax"),
    21: ("SOFTMAX_LOSS", "SoftmaxWithLoss"), 22: ("SPLIT", "Split"), 23: ("TANH", "TanH"),
    24: ("WINDOW_DATA", "WindowData"), 25: ("ELTWISE", "Eltwise"), 26: ("POWER", "Power"),
    27: ("SIGMOID_CROSS_ENTROPY_LOSS", "SigmoidCrossEntropyLoss"), 28: ("HINGE_LOSS", "HingeLoss"),
    29: ("MEMORY_DATA", "MemoryData"), 30: ("ARGMAX", "ArgMax"), 31: ("THRESHOLD", "Threshold"),
    32: ("DUMMY_DATA", "DummyData"), 33: ("SLICE", "Slice"), 34: ("MVN", "MVN"),
    35: ("ABSVAL", "AbsVal"), 36: ("SILENCE", "Silence"), 37: ("CONTRASTIVE_LOSS", "ContrastiveLoss"),
    38: ("EXP", "Exp"), 39: ("DECONVOLUTION", "Deconvolution"),
}
V1_TYPE_BY_ENUM_NAME = {enum_name: type_name for enum_name, type_name in V1_LAYER_TYPES.values()}
PARAMETRIC_TYPES = ("Convolution", "Deconvolution", "InnerProduct")


def read_caffemodel_layers(path, buffer=None):
    """Every layer of a ``.caffemodel`` in file order: ``[(name, type, [blob arrays])]``.

    ``type`` is Caffe's type string (V1 enums are upgraded: ``CONVOLUTION`` -> ``"Convolution"``).
    Blobs keep the shape stored in the file (legacy files: 4-D) and are float32 (read-only views of
    the memory-mapped file, unless the file stored doubles). ``buffer``: the file's bytes, when
    the caller has them mapped already.
    """
    if buffer is None:
        buffer = map_file(path)
    net = Message(buffer, file_name=os.fspath(path))
    layers, v1_layers = net.messages(NET_LAYER), net.messages(NET_LAYERS_V1)
    if layers and v1_layers:
        raise WeightImportError(f"{path}: holds both 'layer' and legacy 'layers' fields; Caffe refuses "
                                "such files too")
    if layers:
        return [(layer.string(LAYER_NAME), layer.string(LAYER_TYPE),
                 [_read_blob(blob) for blob in layer.messages(LAYER_BLOBS)]) for layer in layers]
    return [(layer.string(V1_NAME), _v1_type_name(layer),
             [_read_blob(blob) for blob in layer.messages(V1_BLOBS)]) for layer in v1_layers]


def _v1_type_name(layer):
    number = layer.uint(V1_TYPE)
    return V1_LAYER_TYPES[number][1] if number in V1_LAYER_TYPES else f"V1LayerType{number}"


def _read_blob(blob):
    shape_message = blob.message(BLOB_SHAPE)
    if shape_message is not None:
        shape = tuple(shape_message.repeated_ints(SHAPE_DIM, MAX_DIMS))
    else:
        shape = tuple(blob.int64(number) for number in BLOB_LEGACY_DIMS)
    data = blob.repeated_fixed(BLOB_DATA, np.float32)
    if data.size == 0 and blob.has(BLOB_DOUBLE_DATA):
        data = blob.repeated_fixed(BLOB_DOUBLE_DATA, np.float64).astype(np.float32)
    if any(dim < 0 for dim in shape) or int(np.prod(shape, dtype=object)) != data.size:
        raise WeightImportError(f"{blob.file_name}: blob at byte {blob.start} has shape {shape} but "
                                f"{data.size} values")
    return data.reshape(shape)


def read_caffenet(path, buffer):
    """The encoder tensors of a CaffeNet ``.caffemodel`` as ``{"conv1.weight": array, ...}``.

    Blob 0 of a layer is its weight, blob 1 its bias; legacy 4-D shapes of fully connected
    weights and of biases are reduced to 2-D and 1-D. Further blobs are named ``layer.blobN``.
    """
    tensors = {}
    for name, _, blobs in read_caffemodel_layers(path, buffer):
        for index, blob in enumerate(blobs):
            param = ("weight", "bias")[index] if index < 2 else f"blob{index}"
            tensors[f"{name}.{param}"] = _drop_legacy_axes(name, param, blob)
    return tensors


def _drop_legacy_axes(layer, param, blob):
    """(1, 1, out, in) -> (out, in) for fully connected weights, (1, 1, 1, out) -> (out,) for biases."""
    keep = 1 if param == "bias" else 2 if (param == "weight" and layer in architecture.FC_LAYERS) else None
    return blob if keep is None else drop_legacy_axes(blob, keep)


def drop_legacy_axes(blob, ndim):
    """A legacy 4-D blob with ``ndim`` real axes, its leading length-1 axes dropped: (1, 1, out, in)
    -> (out, in) for ``ndim`` 2. Any other blob is returned as it is (the shape checks name it)."""
    if blob.ndim <= ndim or any(dim != 1 for dim in blob.shape[:-ndim]):
        return blob
    return blob.reshape(blob.shape[-ndim:])


# ---- prototxt ---------------------------------------------------------------------------------
MAX_PROTOTXT_DEPTH = 32  # messages nested in messages: Caffe's nets nest 3 deep
MAX_PROTOTXT_BYTES = 16 << 20  # a net definition is a few KB; tokens are read from it one at a time
TOKEN = re.compile(r'\s+|#[^\n]*|(?P<punct>[{}:\[\],;<>])|(?P<string>"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\')'
                   r'|(?P<word>[^\s{}:\[\],;<>"\'#]+)')


def parse_prototxt(text, file_name):
    """Protobuf text format, minimally: ``[(field, value)]`` with nested lists for messages.

    Scalars stay strings (quotes removed); ``[a, b]`` lists, which Caffe files do not use, are refused.
    """
    tokens = []
    pos = 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if match is None:
            raise _text_error(file_name, text, pos, "unreadable character")
        if match.lastgroup:
            tokens.append((match.lastgroup, match.group(match.lastgroup), match.start()))
        pos = match.end()
    fields, _ = _parse_fields(tokens, 0, text, file_name, depth=0)
    return fields


def _parse_fields(tokens, index, text, file_name, depth):
    """The fields of the message starting at ``tokens[index]``, ``depth`` messages deep (0: the file)."""
    top_level = depth == 0
    if depth > MAX_PROTOTXT_DEPTH:
        raise _text_error(file_name, text, tokens[index - 1][2], f"messages nested more than {MAX_PROTOTXT_DEPTH} "
                                                                 "deep; a net definition nests a few; refused")
    fields = []
    while index < len(tokens):
        kind, value, offset = tokens[index]
        if kind == "punct" and value == "}" and not top_level:
            return fields, index + 1
        if kind != "word":
            raise _text_error(file_name, text, offset, f"expected a field name, found {value!r}")
        index += 1
        if index < len(tokens) and tokens[index][1] == ":":
            index += 1
        if index >= len(tokens):
            raise _text_error(file_name, text, len(text), f"field {value!r} has no value")
        next_kind, next_value, next_offset = tokens[index]
        if next_value in ("{", "<"):
            nested, index = _parse_fields(tokens, index + 1, text, file_name, depth + 1)
            fields.append((value, nested))
        elif next_kind in ("word", "string"):
            fields.append((value, next_value[1:-1] if next_kind == "string" else next_value))
            index += 1
        else:
            raise _text_error(file_name, text, next_offset, f"unsupported value {next_value!r} for {value!r}")
    if not top_level:
        raise _text_error(file_name, text, len(text), "missing '}'")
    return fields, index


def _text_error(file_name, text, offset, what):
    line = text.count("\n", 0, offset) + 1
    return WeightImportError(f"{file_name}:{line}: cannot parse the prototxt: {what}")


def _values(fields, key):
    return [value for name, value in fields if name == key]


def _first(fields, key, default=None):
    found = _values(fields, key)
    return found[0] if found else default


def read_prototxt_layers(path):
    """The parametric layers of a ``.prototxt``: ``{name: {"type", "num_output", "kernel", "group"}}``.

    ``kernel`` is ``(kh, kw)`` for (de)convolutions (from kernel_size or kernel_h/kernel_w).
    """
    size = check_regular_file(path, WeightImportError).st_size
    if size > MAX_PROTOTXT_BYTES:
        raise WeightImportError(f"{path}: {size:,} bytes, more than the {MAX_PROTOTXT_BYTES:,} a prototxt may have "
                                "(a net definition is a few KB); refused")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightImportError(f"{path}: cannot read the prototxt ({exc})") from None
    fields = parse_prototxt(text, os.fspath(path))
    layers = {}
    for layer in _values(fields, "layer") + _values(fields, "layers"):
        layer_type = _first(layer, "type", "")
        layer_type = V1_TYPE_BY_ENUM_NAME.get(layer_type, layer_type)
        if layer_type not in PARAMETRIC_TYPES:
            continue
        params = _first(layer, "inner_product_param" if layer_type == "InnerProduct" else "convolution_param", [])
        spec = {"type": layer_type, "num_output": _integer(params, "num_output", path)}
        if layer_type != "InnerProduct":
            sizes = [_parse_int(v, path) for v in _values(params, "kernel_size")]
            height = _integer(params, "kernel_h", path, sizes[0] if sizes else None)
            width = _integer(params, "kernel_w", path, sizes[-1] if sizes else None)
            spec.update(kernel=(height, width), group=_integer(params, "group", path, 1))
        layers[_first(layer, "name", "")] = spec
    return layers


def _integer(fields, key, path, default=None):
    value = _first(fields, key)
    return default if value is None else _parse_int(value, path)


def _parse_int(value, path):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise WeightImportError(f"{path}: expected an integer, found {value!r}") from None


def check_against_prototxt(caffemodel_path, prototxt_path, model):
    """Every parametric layer of the prototxt must be in the caffemodel with matching type, output
    count and kernel size, and its convolution groups must be those of ``model``."""
    stored = {name: (layer_type, blobs) for name, layer_type, blobs in read_caffemodel_layers(caffemodel_path)}
    problems = []
    for name, spec in read_prototxt_layers(prototxt_path).items():
        if name not in stored or not stored[name][1]:
            problems.append(f"{name}: in the prototxt but has no weights in the caffemodel")
            continue
        layer_type, blobs = stored[name]
        weight = blobs[0].shape
        if layer_type != spec["type"]:
            problems.append(f"{name}: type {spec['type']} in the prototxt, {layer_type} in the caffemodel")
            continue
        if spec["type"] == "InnerProduct":
            outputs = weight[-2] if len(weight) >= 2 else None
        else:
            outputs = weight[0] if spec["type"] == "Convolution" else weight[1] * spec["group"]
            if tuple(weight[2:]) != spec["kernel"]:
                problems.append(f"{name}: kernel {spec['kernel']} in the prototxt, weight shape {weight}")
            expected_groups = architecture.CONV_GROUPS[model].get(name)
            if expected_groups is not None and spec["group"] != expected_groups:
                problems.append(f"{name}: group {spec['group']} in the prototxt, {model} has {expected_groups}")
        if outputs != spec["num_output"]:
            problems.append(f"{name}: num_output {spec['num_output']} in the prototxt, weight shape {weight}")
    if problems:
        raise WeightImportError(f"{caffemodel_path} does not match {prototxt_path}: " + "; ".join(problems))
