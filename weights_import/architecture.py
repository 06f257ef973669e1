"""The encoders' parameter tensors, and the checks that an imported set fits one of them.

Both encoders have the AlexNet topology: five convolutions (kernels 11, 5, 3, 3, 3) on a 3-channel
image, a 6x6 max-pooled map of conv5, and three fully connected layers. Layer names are ours,
``conv1`` .. ``conv5``, ``fc6`` .. ``fc8``, each with ``weight`` and ``bias`` in PyTorch layouts:
convolution ``(out, in / groups, kh, kw)``, fully connected ``(out, in)``, bias ``(out,)``.

- ``caffenet`` (Caffe's bvlc_reference_caffenet): conv2, conv4 and conv5 in 2 groups;
  full widths 96, 256, 384, 384, 256, 4096, 4096, 1000.
- ``alexnet_torchvision``: no groups; full widths 64, 192, 384, 256, 256, 4096, 4096, 1000;
  torchvision state-dict keys ``features.0/3/6/8/10`` and ``classifier.1/4/6``.

Widths are not fixed (a reduced-width file of the same topology imports): each layer is checked
against the one before it, and every message names the layer and both shapes.
"""
import warnings

import numpy as np

from .common import WeightImportError

CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
FC_LAYERS = ("fc6", "fc7", "fc8")
LAYERS = CONV_LAYERS + FC_LAYERS
KERNEL_SIZES = {"conv1": 11, "conv2": 5, "conv3": 3, "conv4": 3, "conv5": 3}
CONV_GROUPS = {
    "caffenet": {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2},
    "alexnet_torchvision": dict.fromkeys(CONV_LAYERS, 1),
}
MODELS = tuple(CONV_GROUPS)
IMAGE_CHANNELS = 3
POOL5_CELLS = 6 * 6
TORCHVISION_LAYERS = {"features.0": "conv1", "features.3": "conv2", "features.6": "conv3",
                      "features.8": "conv4", "features.10": "conv5",
                      "classifier.1": "fc6", "classifier.4": "fc7", "classifier.6": "fc8"}


def expected_names():
    return [f"{layer}.{param}" for layer in LAYERS for param in ("weight", "bias")]


def rename_torchvision(tensors):
    """Map torchvision keys (``features.3.weight``) to ours (``conv2.weight``); other keys stay."""
    renamed = {}
    for key, value in tensors.items():
        prefix, _, param = key.rpartition(".")
        renamed[f"{TORCHVISION_LAYERS[prefix]}.{param}" if prefix in TORCHVISION_LAYERS else key] = value
    return renamed


def infer_model(tensors, fallback):
    """``caffenet`` when conv2 reads half of conv1's channels (2 groups), ``alexnet_torchvision``
    when it reads all of them; ``fallback`` when the shapes do not tell (the check reports why)."""
    conv1, conv2 = tensors.get("conv1.weight"), tensors.get("conv2.weight")
    if getattr(conv1, "ndim", 0) == 4 and getattr(conv2, "ndim", 0) == 4:
        if conv2.shape[1] * 2 == conv1.shape[0]:
            return "caffenet"
        if conv2.shape[1] == conv1.shape[0]:
            return "alexnet_torchvision"
    return fallback


def check_model_name(model):
    if model not in MODELS:
        raise WeightImportError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")


def check_tensors(tensors, model, source):
    """Validate ``{name: array}`` against ``model``; return the expected tensors as float32 arrays.

    Missing tensors are an error, unexpected ones a warning (they are left out); both lists are
    named in full. Shapes must chain: conv in-channels x groups = the previous out-channels,
    fc6 in-features = conv5 out-channels x 6 x 6, and so on.
    """
    check_model_name(model)
    expected = expected_names()
    missing = [name for name in expected if name not in tensors]
    unexpected = sorted(name for name in tensors if name not in expected)
    if missing:
        raise WeightImportError(f"{source}: not a complete {model} ({_describe(CONV_GROUPS[model])}): "
                                f"missing tensors {', '.join(missing)}"
                                + (f"; unexpected tensors {', '.join(unexpected)}" if unexpected else ""))
    if unexpected:
        warnings.warn(f"{source}: ignoring unexpected tensors {', '.join(unexpected)}", stacklevel=3)
    arrays = {name: _as_float32(tensors[name], name, source) for name in expected}
    _check_shapes(arrays, model, source)
    return arrays


def _describe(groups):
    grouped = [layer for layer, count in groups.items() if count > 1]
    return f"groups 2 in {', '.join(grouped)}" if grouped else "no groups"


def _as_float32(value, name, source):
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise WeightImportError(f"{source}: {name} is not a floating-point tensor ({type(value).__name__}"
                                f"{', ' + str(value.dtype) if isinstance(value, np.ndarray) else ''})")
    return value.astype(np.float32, copy=False)


def _check_shapes(arrays, model, source):
    def fail(name, what):
        raise WeightImportError(f"{source}: {name} {what} (model {model})")

    previous_name, previous_shape, channels = "the input image", (IMAGE_CHANNELS,), IMAGE_CHANNELS
    for layer in CONV_LAYERS:
        name, groups, kernel = f"{layer}.weight", CONV_GROUPS[model][layer], KERNEL_SIZES[layer]
        shape = arrays[name].shape
        if len(shape) != 4 or shape[2:] != (kernel, kernel):
            fail(name, f"has shape {shape}, expected (out, in/groups, {kernel}, {kernel})")
        if shape[0] % groups or shape[1] * groups != channels:
            fail(name, f"shape {shape} does not follow {previous_name} shape {previous_shape}: "
                       f"in-channels {shape[1]} x groups {groups} must equal {channels} and out-channels "
                       f"{shape[0]} must divide into {groups} groups")
        _check_bias(arrays, layer, fail)
        previous_name, previous_shape, channels = name, shape, shape[0]
    features = channels * POOL5_CELLS
    for layer in FC_LAYERS:
        name = f"{layer}.weight"
        shape = arrays[name].shape
        if len(shape) != 2 or shape[1] != features:
            fail(name, f"shape {shape} does not follow {previous_name} shape {previous_shape}: "
                       f"expected (out, {features})")
        _check_bias(arrays, layer, fail)
        previous_name, previous_shape, features = name, shape, shape[0]


def _check_bias(arrays, layer, fail):
    weight, bias = arrays[f"{layer}.weight"].shape, arrays[f"{layer}.bias"].shape
    if bias != weight[:1]:
        fail(f"{layer}.bias", f"has shape {bias}, but {layer}.weight shape {weight} needs ({weight[0]},)")
