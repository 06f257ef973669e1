"""ONNX ``.onnx`` models, read without the onnx package or ONNX Runtime.

Field numbers, from onnx/onnx.proto:

- ``ModelProto``: graph 7.
- ``GraphProto``: node 1 (``NodeProto``, in execution order), initializer 5 (``TensorProto``).
- ``NodeProto``: input 1 (names), op_type 4, attribute 5 (``AttributeProto``: name 1, i 3).
- ``TensorProto``: dims 1 (int64), data_type 2 (1 FLOAT, 11 DOUBLE), float_data 4 (packed float),
  name 8, raw_data 9 (the values as little-endian bytes), double_data 10 (packed double),
  data_location 14 (1 = the values live in an external file: not supported).

Layers are named by the graph's order of operations, whatever the initializers are called
(the model zoo's CaffeNet says ``conv1_w_0``, a torchvision export ``features.0.weight``): the
i-th ``Conv`` node is ``conv{i}``, the j-th ``Gemm`` node ``fc{5 + j}``; input 1 of the node is
the weight, input 2 the bias. ``Gemm`` computes ``A @ B'`` where ``B' = B.T`` when ``transB = 1``
(the usual case: B is (out, in)); with ``transB = 0`` B is (in, out) and is transposed here.
"""
import os

import numpy as np

from .common import MAX_DIMS, WeightImportError
from .protobuf_wire import Message

MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER = 1, 5
NODE_INPUT, NODE_OP_TYPE, NODE_ATTRIBUTE = 1, 4, 5
ATTRIBUTE_NAME, ATTRIBUTE_INT = 1, 3
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_NAME, TENSOR_RAW_DATA, TENSOR_DATA_LOCATION = 1, 2, 8, 9, 14
EXTERNAL = 1
# data_type -> (numpy dtype, the field holding typed values)
TENSOR_TYPES = {1: (np.float32, 4), 11: (np.float64, 10)}
FIRST_LAYER_NUMBER = {"Conv": 1, "Gemm": 6}
LAYER_PREFIX = {"Conv": "conv", "Gemm": "fc"}


def read_onnx(path, buffer):
    """The weights of an ONNX AlexNet/CaffeNet as ``{"conv1.weight": array, ...}``."""
    file_name = os.fspath(path)
    graph = Message(buffer, file_name=file_name).message(MODEL_GRAPH)
    if graph is None:
        raise WeightImportError(f"{file_name}: no graph (field 7): not an ONNX model")
    initializers = {tensor.string(TENSOR_NAME): tensor for tensor in graph.messages(GRAPH_INITIALIZER)}
    counts = dict.fromkeys(FIRST_LAYER_NUMBER, 0)
    tensors = {}
    for node in graph.messages(GRAPH_NODE):
        op_type = node.string(NODE_OP_TYPE)
        if op_type not in FIRST_LAYER_NUMBER:
            continue
        layer = f"{LAYER_PREFIX[op_type]}{FIRST_LAYER_NUMBER[op_type] + counts[op_type]}"
        counts[op_type] += 1
        for param, input_name in zip(("weight", "bias"), node.strings(NODE_INPUT)[1:]):
            if input_name in initializers:
                tensors[f"{layer}.{param}"] = _read_tensor(initializers[input_name], input_name)
        if op_type == "Gemm" and not _int_attribute(node, "transB", 0) and f"{layer}.weight" in tensors:
            tensors[f"{layer}.weight"] = tensors[f"{layer}.weight"].T
    return tensors


def _int_attribute(node, name, default):
    for attribute in node.messages(NODE_ATTRIBUTE):
        if attribute.string(ATTRIBUTE_NAME) == name:
            return attribute.int64(ATTRIBUTE_INT)
    return default


def _read_tensor(tensor, name):
    where = f"{tensor.file_name}: initializer {name!r} (byte {tensor.start})"
    if tensor.uint(TENSOR_DATA_LOCATION) == EXTERNAL:
        raise WeightImportError(f"{where} keeps its values in an external file, which is not supported")
    data_type = tensor.uint(TENSOR_DATA_TYPE)
    if data_type not in TENSOR_TYPES:
        raise WeightImportError(f"{where} has data type {data_type}; only FLOAT (1) and DOUBLE (11) import")
    dtype, typed_field = TENSOR_TYPES[data_type]
    dims = tuple(tensor.repeated_ints(TENSOR_DIMS, MAX_DIMS))
    raw = tensor.span(TENSOR_RAW_DATA)
    if raw is not None:
        start, end = raw
        itemsize = np.dtype(dtype).itemsize
        if (end - start) % itemsize:
            raise WeightImportError(f"{where}: raw_data of {end - start} bytes is no whole number of values")
        values = np.frombuffer(tensor.buffer, np.dtype(dtype).newbyteorder("<"), (end - start) // itemsize, start)
    else:
        values = tensor.repeated_fixed(typed_field, dtype)
    if any(dim < 0 for dim in dims) or int(np.prod(dims, dtype=object)) != values.size:
        raise WeightImportError(f"{where} has dims {dims} but {values.size} values")
    return values.reshape(dims)
