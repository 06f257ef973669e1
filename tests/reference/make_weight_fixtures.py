"""Write tests/fixtures/weights/: small weight files made by the real tools, for tests/weights_import/test_weights_import.py.

    python tests/reference/make_weight_fixtures.py      # needs torch, onnx and protobuf (the tests need none)

Reduced widths keep every file small (tens of KB) while the topology stays CaffeNet's or
torchvision AlexNet's. The random weights of each model go to ``expected_<model>.npz`` under our
names, and each written file is read back with the tool that wrote it and compared with them.

- ``caffenet_layer.caffemodel``: ``NetParameter.layer`` (LayerParameter, blob ``shape``);
  ``caffenet_v1.caffemodel``: legacy ``layers`` (V1LayerParameter, enum types, blob
  num/channels/height/width); ``caffenet.prototxt``: the net definition in text format. Written by
  protobuf message classes built from the subset of Caffe's schema in :data:`CAFFE_SCHEMA` (field
  numbers as in BVLC/caffe src/caffe/proto/caffe.proto), so no protoc is needed.
- ``decoder.caffemodel``: a decoder-like net (InnerProduct, Deconvolution, a Convolution whose blobs
  are stored as double_data) for ``read_caffemodel_layers``; ``expected_decoder.npz``.
- ``caffenet_zoo.onnx``: CaffeNet built with onnx.helper, initializers named as in the ONNX model
  zoo (``conv1_w_0``), alternately raw_data and float_data, conv3's bias as DOUBLE, fc8 a Gemm with
  transB=0 (weight stored (in, out)).
- ``alexnet_torchvision_zip.pth`` / ``alexnet_torchvision_legacy.pth``: ``torch.save`` of a
  torchvision-layout AlexNet state dict, new zip and legacy format;
  ``alexnet_torchvision.onnx``: the same module exported by ``torch.onnx.export`` (TorchScript exporter).
"""
import os

import numpy as np
import onnx
import torch
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from onnx import helper, numpy_helper

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "weights")
SEED = 20160506
CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
FC_LAYERS = ("fc6", "fc7", "fc8")
KERNELS = {"conv1": 11, "conv2": 5, "conv3": 3, "conv4": 3, "conv5": 3}
STRIDES = {"conv1": 4}
PADS = {"conv1": 0, "conv2": 2, "conv3": 1, "conv4": 1, "conv5": 1}
MODELS = {
    "caffenet": {"widths": dict(conv1=8, conv2=16, conv3=24, conv4=24, conv5=16, fc6=32, fc7=32, fc8=10),
                 "groups": dict(conv1=1, conv2=2, conv3=1, conv4=2, conv5=2)},
    "alexnet_torchvision": {"widths": dict(conv1=8, conv2=16, conv3=24, conv4=16, conv5=16, fc6=32, fc7=32,
                                           fc8=10),
                            "groups": dict.fromkeys(CONV_LAYERS, 1)},
}
TORCHVISION_INDEX = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
                     "conv5": "features.10", "fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"}

# (message, [(field, number, type, repeated, message or enum type, packed)]), from caffe.proto
T = descriptor_pb2.FieldDescriptorProto
CAFFE_SCHEMA = [
    ("BlobShape", [("dim", 1, T.TYPE_INT64, True, None, True)]),
    ("BlobProto", [("num", 1, T.TYPE_INT64, False, None, False),
                   ("channels", 2, T.TYPE_INT64, False, None, False),
                   ("height", 3, T.TYPE_INT64, False, None, False),
                   ("width", 4, T.TYPE_INT64, False, None, False),
                   ("data", 5, T.TYPE_FLOAT, True, None, True),
                   ("shape", 7, T.TYPE_MESSAGE, False, ".caffe.BlobShape", False),
                   ("double_data", 8, T.TYPE_DOUBLE, True, None, True)]),
    ("ConvolutionParameter", [("num_output", 1, T.TYPE_UINT32, False, None, False),
                              ("pad", 3, T.TYPE_UINT32, True, None, False),
                              ("kernel_size", 4, T.TYPE_UINT32, True, None, False),
                              ("group", 5, T.TYPE_UINT32, False, None, False),
                              ("stride", 6, T.TYPE_UINT32, True, None, False)]),
    ("InnerProductParameter", [("num_output", 1, T.TYPE_UINT32, False, None, False)]),
    ("LayerParameter", [("name", 1, T.TYPE_STRING, False, None, False),
                        ("type", 2, T.TYPE_STRING, False, None, False),
                        ("bottom", 3, T.TYPE_STRING, True, None, False),
                        ("top", 4, T.TYPE_STRING, True, None, False),
                        ("blobs", 7, T.TYPE_MESSAGE, True, ".caffe.BlobProto", False),
                        ("convolution_param", 106, T.TYPE_MESSAGE, False, ".caffe.ConvolutionParameter", False),
                        ("inner_product_param", 117, T.TYPE_MESSAGE, False, ".caffe.InnerProductParameter",
                         False)]),
    ("V1LayerParameter", [("bottom", 2, T.TYPE_STRING, True, None, False),
                          ("top", 3, T.TYPE_STRING, True, None, False),
                          ("name", 4, T.TYPE_STRING, False, None, False),
                          ("type", 5, T.TYPE_ENUM, False, ".caffe.V1LayerParameter.LayerType", False),
                          ("blobs", 6, T.TYPE_MESSAGE, True, ".caffe.BlobProto", False),
                          ("convolution_param", 10, T.TYPE_MESSAGE, False, ".caffe.ConvolutionParameter", False),
                          ("inner_product_param", 17, T.TYPE_MESSAGE, False, ".caffe.InnerProductParameter",
                           False)]),
    ("NetParameter", [("name", 1, T.TYPE_STRING, False, None, False),
                      ("layers", 2, T.TYPE_MESSAGE, True, ".caffe.V1LayerParameter", False),
                      ("layer", 100, T.TYPE_MESSAGE, True, ".caffe.LayerParameter", False)]),
]
V1_LAYER_TYPES = {"NONE": 0, "CONVOLUTION": 4, "DATA": 5, "DROPOUT": 6, "INNER_PRODUCT": 14, "LRN": 15,
                  "POOLING": 17, "RELU": 18, "SOFTMAX": 20}
V1_ENUM_OF = {"Input": "DATA", "Convolution": "CONVOLUTION", "ReLU": "RELU", "Pooling": "POOLING",
              "LRN": "LRN", "InnerProduct": "INNER_PRODUCT", "Dropout": "DROPOUT", "Softmax": "SOFTMAX"}


def caffe_classes():
    """NetParameter, built at run time from :data:`CAFFE_SCHEMA` with protobuf's descriptor API."""
    schema = descriptor_pb2.FileDescriptorProto(name="caffe_subset.proto", package="caffe", syntax="proto2")
    for message_name, fields in CAFFE_SCHEMA:
        message = schema.message_type.add(name=message_name)
        for name, number, field_type, repeated, type_name, packed in fields:
            field = message.field.add(name=name, number=number, type=field_type,
                                      label=T.LABEL_REPEATED if repeated else T.LABEL_OPTIONAL)
            if type_name:
                field.type_name = type_name
            if packed:
                field.options.packed = True
        if message_name == "V1LayerParameter":
            enum = message.enum_type.add(name="LayerType")
            for value_name, value in V1_LAYER_TYPES.items():
                enum.value.add(name=value_name, number=value)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(schema)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe.NetParameter"))


def random_weights(model, rng):
    widths, groups = MODELS[model]["widths"], MODELS[model]["groups"]
    arrays, channels = {}, 3
    for layer in CONV_LAYERS:
        shape = (widths[layer], channels // groups[layer], KERNELS[layer], KERNELS[layer])
        arrays[f"{layer}.weight"] = rng.standard_normal(shape).astype(np.float32)
        arrays[f"{layer}.bias"] = rng.standard_normal(widths[layer]).astype(np.float32)
        channels = widths[layer]
    features = channels * 36
    for layer in FC_LAYERS:
        arrays[f"{layer}.weight"] = rng.standard_normal((widths[layer], features)).astype(np.float32)
        arrays[f"{layer}.bias"] = rng.standard_normal(widths[layer]).astype(np.float32)
        features = widths[layer]
    return arrays


def caffenet_layers(weights):
    """(name, type, bottom, top, blobs, num_output, conv settings) of the deploy net, in order."""
    groups = MODELS["caffenet"]["groups"]
    layers, bottom = [("data", "Input", None, "data", [], None, None)], "data"
    followers = {"conv1": ["relu", "pool", "norm"], "conv2": ["relu", "pool", "norm"], "conv3": ["relu"],
                 "conv4": ["relu"], "conv5": ["relu", "pool"], "fc6": ["relu", "drop"], "fc7": ["relu", "drop"],
                 "fc8": []}
    kinds = {"relu": "ReLU", "pool": "Pooling", "norm": "LRN", "drop": "Dropout"}
    for layer in CONV_LAYERS + FC_LAYERS:
        blobs = [weights[f"{layer}.weight"], weights[f"{layer}.bias"]]
        conv = (KERNELS[layer], STRIDES.get(layer, 1), PADS[layer], groups[layer]) if layer in KERNELS else None
        layer_type = "Convolution" if conv else "InnerProduct"
        layers.append((layer, layer_type, bottom, layer, blobs, blobs[0].shape[0], conv))
        bottom = layer
        for kind in followers[layer]:
            name = kind + layer[-1]
            top = layer if kind in ("relu", "drop") else name
            layers.append((name, kinds[kind], bottom, top, [], None, None))
            bottom = top
    layers.append(("prob", "Softmax", bottom, "prob", [], None, None))
    return layers


def fill_params(target, layer_type, num_output, conv):
    if layer_type == "InnerProduct":
        target.inner_product_param.num_output = num_output
    elif layer_type in ("Convolution", "Deconvolution"):
        kernel, stride, pad, group = conv
        param = target.convolution_param
        param.num_output, param.group = num_output, group
        param.kernel_size.append(kernel)
        if stride != 1:
            param.stride.append(stride)
        if pad:
            param.pad.append(pad)


def fill_blob(target, array, legacy=False, double=False):
    if legacy:
        target.num, target.channels, target.height, target.width = (1,) * (4 - array.ndim) + array.shape
    else:
        target.shape.dim.extend(array.shape)
    (target.double_data if double else target.data).extend(array.ravel().tolist())


def write_caffemodels(net_class, weights):
    layer_net, v1_net = net_class(name="CaffeNet"), net_class(name="CaffeNet")
    for name, layer_type, bottom, top, blobs, num_output, conv in caffenet_layers(weights):
        layer = layer_net.layer.add(name=name, type=layer_type, top=[top], bottom=[bottom] if bottom else [])
        v1 = v1_net.layers.add(name=name, type=V1_LAYER_TYPES[V1_ENUM_OF[layer_type]], top=[top],
                               bottom=[bottom] if bottom else [])
        for target in (layer, v1):
            fill_params(target, layer_type, num_output, conv)
        for blob in blobs:
            fill_blob(layer.blobs.add(), blob)
            fill_blob(v1.blobs.add(), blob, legacy=True)
    write(layer_net.SerializeToString(), "caffenet_layer.caffemodel")
    write(v1_net.SerializeToString(), "caffenet_v1.caffemodel")
    for message in layer_net.layer:
        del message.blobs[:]
    write(text_format.MessageToString(layer_net).encode(), "caffenet.prototxt")
    for file_name, net, layers in (("caffenet_layer.caffemodel", layer_net, "layer"),
                                   ("caffenet_v1.caffemodel", v1_net, "layers")):
        check = net_class.FromString(read(file_name))
        stored = {f"{l.name}.{p}": np.array(b.data, np.float32)
                  for l in getattr(check, layers) for p, b in zip(("weight", "bias"), l.blobs)}
        assert all(np.array_equal(stored[k], v.ravel()) for k, v in weights.items()), file_name


def write_decoder(net_class, rng):
    """A small decoder-like net: Input -> InnerProduct -> Reshape -> Deconvolution -> Convolution."""
    blobs = {"defc": [rng.standard_normal((16, 20)), rng.standard_normal(16)],
             "deconv1": [rng.standard_normal((4, 3, 4, 4)), rng.standard_normal(3)],
             "conv1": [rng.standard_normal((3, 3, 3, 3)), rng.standard_normal(3)]}
    blobs = {name: [b.astype(np.float32) for b in pair] for name, pair in blobs.items()}
    layers = [("feat", "Input", []), ("defc", "InnerProduct", blobs["defc"]), ("reshape", "Reshape", []),
              ("deconv1", "Deconvolution", blobs["deconv1"]), ("relu1", "ReLU", []),
              ("conv1", "Convolution", blobs["conv1"])]
    net = net_class(name="decoder")
    for name, layer_type, layer_blobs in layers:
        layer = net.layer.add(name=name, type=layer_type)
        for blob in layer_blobs:
            fill_blob(layer.blobs.add(), blob, double=(name == "conv1"))
    write(net.SerializeToString(), "decoder.caffemodel")
    np.savez(os.path.join(FIXTURES, "expected_decoder.npz"),
             layer_names=np.array([name for name, _, _ in layers]),
             layer_types=np.array([layer_type for _, layer_type, _ in layers]),
             **{f"{name}/{index}": blob for name, pair in blobs.items() for index, blob in enumerate(pair)})


def write_zoo_onnx(weights):
    groups = MODELS["caffenet"]["groups"]
    nodes, initializers, previous, index = [], [], "data_0", 0

    def initializer(name, array):
        nonlocal index
        if name == "conv3_b_0":
            tensor = helper.make_tensor(name, onnx.TensorProto.DOUBLE, array.shape, array.astype(np.float64).ravel())
        elif index % 2:
            tensor = helper.make_tensor(name, onnx.TensorProto.FLOAT, array.shape, array.ravel().tolist())
        else:
            tensor = helper.make_tensor(name, onnx.TensorProto.FLOAT, array.shape, array.tobytes(), raw=True)
        index += 1
        initializers.append(tensor)
        return name

    for layer in CONV_LAYERS:
        w, b = initializer(f"{layer}_w_0", weights[f"{layer}.weight"]), initializer(f"{layer}_b_0",
                                                                                    weights[f"{layer}.bias"])
        k, pad = KERNELS[layer], PADS[layer]
        nodes.append(helper.make_node("Conv", [previous, w, b], [f"{layer}_1"], kernel_shape=[k, k],
                                      strides=[STRIDES.get(layer, 1)] * 2, pads=[pad] * 4, group=groups[layer]))
        nodes.append(helper.make_node("Relu", [f"{layer}_1"], [f"{layer}_2"]))
        previous = f"{layer}_2"
        if layer in ("conv1", "conv2", "conv5"):
            nodes.append(helper.make_node("MaxPool", [previous], [f"pool{layer[-1]}_1"], kernel_shape=[3, 3],
                                          strides=[2, 2]))
            previous = f"pool{layer[-1]}_1"
        if layer in ("conv1", "conv2"):
            nodes.append(helper.make_node("LRN", [previous], [f"norm{layer[-1]}_1"], size=5, alpha=1e-4,
                                          beta=0.75, bias=1.0))
            previous = f"norm{layer[-1]}_1"
    nodes.append(helper.make_node("Flatten", [previous], ["pool5_flat"]))
    previous = "pool5_flat"
    for layer in FC_LAYERS:
        transposed = layer == "fc8"
        weight = weights[f"{layer}.weight"]
        w = initializer(f"{layer}_w_0", np.ascontiguousarray(weight.T) if transposed else weight)
        b = initializer(f"{layer}_b_0", weights[f"{layer}.bias"])
        nodes.append(helper.make_node("Gemm", [previous, w, b], [f"{layer}_1"], transB=0 if transposed else 1))
        previous = f"{layer}_1"
        if layer != "fc8":
            nodes.append(helper.make_node("Relu", [previous], [f"{layer}_2"]))
            previous = f"{layer}_2"
    nodes.append(helper.make_node("Softmax", [previous], ["prob_1"]))
    graph = helper.make_graph(
        nodes, "caffenet", [helper.make_tensor_value_info("data_0", onnx.TensorProto.FLOAT, [1, 3, 227, 227])],
        [helper.make_tensor_value_info("prob_1", onnx.TensorProto.FLOAT, [1, 10])], initializers)
    model = helper.make_model(graph, producer_name="featinv-fixtures", opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(FIXTURES, "caffenet_zoo.onnx"))
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(os.path.join(FIXTURES, "caffenet_zoo.onnx"))
              .graph.initializer}
    assert np.array_equal(stored["fc8_w_0"].T, weights["fc8.weight"])
    assert np.array_equal(stored["conv3_b_0"], weights["conv3.bias"])


class TorchvisionAlexNet(torch.nn.Module):
    """torchvision.models.AlexNet's layout (same module indices), with the given widths."""

    def __init__(self, widths):
        super().__init__()
        nn, w = torch.nn, widths
        self.features = nn.Sequential(
            nn.Conv2d(3, w["conv1"], 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(w["conv1"], w["conv2"], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(w["conv2"], w["conv3"], 3, padding=1), nn.ReLU(),
            nn.Conv2d(w["conv3"], w["conv4"], 3, padding=1), nn.ReLU(),
            nn.Conv2d(w["conv4"], w["conv5"], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(w["conv5"] * 36, w["fc6"]), nn.ReLU(),
            nn.Dropout(), nn.Linear(w["fc6"], w["fc7"]), nn.ReLU(), nn.Linear(w["fc7"], w["fc8"]))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def write_torch(weights):
    module = TorchvisionAlexNet(MODELS["alexnet_torchvision"]["widths"])
    state = {f"{TORCHVISION_INDEX[name.split('.')[0]]}.{name.split('.')[1]}": torch.from_numpy(array)
             for name, array in weights.items()}
    module.load_state_dict(state)
    module.eval()
    torch.save(module.state_dict(), os.path.join(FIXTURES, "alexnet_torchvision_zip.pth"))
    torch.save(module.state_dict(), os.path.join(FIXTURES, "alexnet_torchvision_legacy.pth"),
               _use_new_zipfile_serialization=False)
    for file_name in ("alexnet_torchvision_zip.pth", "alexnet_torchvision_legacy.pth"):
        loaded = torch.load(os.path.join(FIXTURES, file_name), weights_only=True)
        assert all(torch.equal(loaded[k], v) for k, v in state.items()), file_name
    path = os.path.join(FIXTURES, "alexnet_torchvision.onnx")
    torch.onnx.export(module, torch.zeros(1, 3, 224, 224), path, dynamo=False, input_names=["input"])
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    assert all(np.array_equal(stored[k], v.numpy()) for k, v in state.items()), sorted(stored)


def write(data, file_name):
    with open(os.path.join(FIXTURES, file_name), "wb") as f:
        f.write(data)


def read(file_name):
    with open(os.path.join(FIXTURES, file_name), "rb") as f:
        return f.read()


def main():
    os.makedirs(FIXTURES, exist_ok=True)
    rng = np.random.default_rng(SEED)
    weights = {model: random_weights(model, rng) for model in MODELS}
    for model, arrays in weights.items():
        np.savez(os.path.join(FIXTURES, f"expected_{model}.npz"), **arrays)
    net_class = caffe_classes()
    write_caffemodels(net_class, weights["caffenet"])
    write_decoder(net_class, rng)
    write_zoo_onnx(weights["caffenet"])
    write_torch(weights["alexnet_torchvision"])
    total = 0
    for name in sorted(os.listdir(FIXTURES)):
        size = os.path.getsize(os.path.join(FIXTURES, name))
        total += size
        print(f"{size:9d}  {name}")
    print(f"{total:9d}  total")


if __name__ == "__main__":
    main()
