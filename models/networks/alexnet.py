"""The AlexNet encoders: CaffeNet (the paper's network) and torchvision's AlexNet (a second encoder).

CaffeNet is Caffe's ``bvlc_reference_caffenet`` exactly as the paper uses it::

    conv1 96x11x11 /4 -> relu1 -> pool1 3/2 (ceil) -> norm1 LRN(5, 1e-4, 0.75, k=1)
    conv2 256x5x5 pad 2, 2 groups -> relu2 -> pool2 3/2 (ceil) -> norm2
    conv3 384x3x3 pad 1 -> relu3
    conv4 384x3x3 pad 1, 2 groups -> relu4
    conv5 256x3x3 pad 1, 2 groups -> relu5 -> pool5 3/2 (ceil)
    fc6 4096 -> relu6 -> drop6 (0.5) -> fc7 4096 -> relu7 -> drop7 (0.5) -> fc8 1000

torchvision's AlexNet (a different network: 64/192/384/256/256 filters, no LRN, no groups, floor-mode
pooling, dropout *before* fc6 and fc7)::

    conv1 64x11x11 /4 pad 2 -> relu1 -> pool1 3/2
    conv2 192x5x5 pad 2 -> relu2 -> pool2 3/2
    conv3 384x3x3 pad 1 -> relu3 -> conv4 256 -> relu4 -> conv5 256 -> relu5 -> pool5 3/2
    [adaptive avg-pool to 6x6: the identity at the 224x224 input; other sizes are refused]
    drop5 -> fc6 4096 -> relu6 -> drop6 -> fc7 4096 -> relu7 -> fc8 1000

Every processing step is a sub-module named as in Caffe (``conv1``, ``relu1``, ``pool1``, ``norm1``,
...), so the parameters are ``conv1.weight``, ``conv1.bias``, ..., ``fc8.bias``: the names and the
(PyTorch) layouts of our HDF5 weight files (conv ``(out, in/groups, kh, kw)``, fc ``(out, in)``).
The flattening of pool5 for fc6 is done inside the network (C order, as Caffe and PyTorch).

Feature taps (as the paper defines them): a layer's features are its output after its last processing step,
dropout excluded (dropout comes after the tap, so taps are the same in training and evaluation)::

    tap     CaffeNet step   torchvision step   full-width CaffeNet shape
    conv1   norm1           pool1              (96, 27, 27)
    conv2   norm2           pool2              (256, 13, 13)
    conv3   relu3           relu3              (384, 13, 13)
    conv4   relu4           relu4              (384, 13, 13)
    conv5   pool5           pool5              (256, 6, 6)
    fc6     relu6           relu6              (4096,)
    fc7     relu7           relu7              (4096,)
    fc8     fc8             fc8                (1000,)   pre-softmax scores

Building: ``caffenet(weights=path)`` / ``alexnet_torchvision(weights=path)`` read the layer widths
from the weight file (so a reduced-width file of the same topology loads), check that consecutive
shapes chain and that the file's ``model`` attribute names the right network; ``weights=None``
gives random (He-normal) weights, whose features are meaningless (tests, shapes, timing only).

Input: :func:`prepare` (CaffeNet) and :func:`prepare_torchvision` turn RGB images into the network
input; :func:`crop_box` tells which region of the 256x256 image the input crop covers (the
region a decoder is trained to reconstruct). The network methods ``net.prepare`` and
``net.crop_box`` call the right one.
"""
import os

import numpy as np

import nn
from nn.backend import to_device
from nn.errors import OptionError
from nn.serialization import WeightFileError

TAPS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
CONV_LAYERS = TAPS[:5]
FC_LAYERS = TAPS[5:]
PARAM_LAYERS = TAPS  # the layers holding weights, in order

CAFFENET_WIDTHS = (96, 256, 384, 384, 256, 4096, 4096, 1000)
TORCHVISION_WIDTHS = (64, 192, 384, 256, 256, 4096, 4096, 1000)

# Full-width CaffeNet feature shapes (per image) at the 227x227 input; the decoders use these.
TAP_SHAPES = {
    "conv1": (96, 27, 27), "conv2": (256, 13, 13), "conv3": (384, 13, 13), "conv4": (384, 13, 13),
    "conv5": (256, 6, 6), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,),
}
# Full-width torchvision AlexNet feature shapes at the 224x224 input.
TORCHVISION_TAP_SHAPES = {
    "conv1": (64, 27, 27), "conv2": (192, 13, 13), "conv3": (384, 13, 13), "conv4": (256, 13, 13),
    "conv5": (256, 6, 6), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,),
}

IMAGE_SIZE = 256  # the data pipeline feeds 256x256 RGB images
CAFFENET_CROP = 227
TORCHVISION_CROP = 224
# Caffe's per-channel ImageNet mean, BGR order (the exact values of the mean image's
# channel means are 104.007, 116.669, 122.679).
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)
TORCHVISION_MEAN_RGB = (0.485, 0.456, 0.406)
TORCHVISION_STD_RGB = (0.229, 0.224, 0.225)

# Caffe runs ReLU and dropout in place, so its blob "conv1" holds our step "relu1" and its blob
# "fc6" our "drop6" (the same as "relu6" in evaluation). Caffe blob name -> our step name:
CAFFE_BLOB_STEPS = {
    "conv1": "relu1", "pool1": "pool1", "norm1": "norm1",
    "conv2": "relu2", "pool2": "pool2", "norm2": "norm2",
    "conv3": "relu3", "conv4": "relu4", "conv5": "relu5", "pool5": "pool5",
    "fc6": "drop6", "fc7": "drop7", "fc8": "fc8",
}


def feature_shape(tap, model="caffenet"):
    """The per-image feature shape of ``tap`` for the full-width network (``caffenet`` at 227x227,
    ``alexnet_torchvision`` at 224x224); e.g. ``feature_shape("conv5") == (256, 6, 6)``."""
    table = {"caffenet": TAP_SHAPES, "alexnet_torchvision": TORCHVISION_TAP_SHAPES}.get(model)
    if table is None:
        raise OptionError(f"unknown model {model!r}; expected 'caffenet' or 'alexnet_torchvision'")
    if tap not in table:
        raise ValueError(f"unknown feature tap {tap!r}; expected one of {', '.join(TAPS)}")
    return table[tap]


# --- the networks ----------------------------------------------------------------------------------

class _AlexNetBase(nn.Module):
    """Shared machinery: a named chain of steps, taps, and running up to a tap.

    Subclasses fill ``self._steps`` (step names in order, each a registered sub-module) and define
    ``TAP_STEPS`` (tap -> step), ``MODEL``, ``CROP``, ``KERNELS``, ``GROUPS``.
    """

    MODEL = None
    CROP = None
    TAP_STEPS = {}
    KERNELS = {"conv1": 11, "conv2": 5, "conv3": 3, "conv4": 3, "conv5": 3}
    GROUPS = dict.fromkeys(CONV_LAYERS, 1)

    def __init__(self, widths, pool5_size):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != len(PARAM_LAYERS) or min(widths) < 1:
            raise ValueError(f"{type(self).__name__}: widths must be {len(PARAM_LAYERS)} positive ints "
                             f"(conv1..conv5, fc6..fc8), got {widths}")
        for layer, width in zip(CONV_LAYERS, widths):
            if width % self.GROUPS[layer]:
                raise ValueError(f"{type(self).__name__}: {layer} width {width} not divisible by its "
                                 f"{self.GROUPS[layer]} groups")
        self.widths = widths
        self.pool5_size = int(pool5_size)
        self._steps = []

    def _add(self, name, module):
        setattr(self, name, module)
        self._steps.append(name)

    @property
    def steps(self):
        """Every processing step's name, in order (the keys of :meth:`blobs`)."""
        return tuple(self._steps)

    def tap_shape(self, tap):
        """This network's per-image feature shape at ``tap`` (its widths, the nominal input size)."""
        if tap not in self.TAP_STEPS:
            raise ValueError(f"unknown feature tap {tap!r}; expected one of {', '.join(TAPS)}")
        width = self.widths[TAPS.index(tap)]
        if tap in FC_LAYERS:
            return (width,)
        if tap == "conv5":
            return (width, self.pool5_size, self.pool5_size)
        side = 27 if tap == "conv1" else 13
        return (width, side, side)

    # --- running ------------------------------------------------------------------------------
    def _input(self, x):
        if not isinstance(x, nn.Tensor):
            x = nn.Tensor(to_device(x, self.device))
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}: expected an input batch (N, 3, H, W) "
                             f"({self.CROP}x{self.CROP} from prepare()), got shape {tuple(x.shape)}")
        return x

    def _run(self, x, last_step, keep):
        """Run the steps up to and including ``last_step``; return ``{step: output}`` for ``keep``."""
        x = self._input(x)
        kept = {}
        for name in self._steps:
            module = self._modules[name]
            if name == "fc6" or (name == "drop5" and x.ndim == 4):
                x = self._flatten_pool5(x)
            x = module(x)
            if name in keep:
                kept[name] = x
            if name == last_step:
                return kept
        raise AssertionError(f"step {last_step!r} not in the network")  # pragma: no cover

    def _flatten_pool5(self, x):
        if x.ndim == 2:
            return x
        n, c, h, w = x.shape
        expected = self.fc6.weight.shape[1]
        if c * h * w != expected:
            raise ValueError(f"{type(self).__name__}: pool5 gives maps {(c, h, w)} = {c * h * w} features "
                             f"but fc6 (weight {tuple(self.fc6.weight.shape)}) expects {expected} "
                             f"({c} x {self.pool5_size} x {self.pool5_size}); the input must be "
                             f"{self.CROP}x{self.CROP}")
        return nn.functional.flatten(x, 1)

    def _check_taps(self, layers):
        layers = (layers,) if isinstance(layers, str) else tuple(layers)
        unknown = [t for t in layers if t not in self.TAP_STEPS]
        if unknown or not layers:
            raise ValueError(f"unknown feature tap(s) {unknown or layers}; expected some of {', '.join(TAPS)}")
        return layers

    def features(self, x, layers=("conv5",)):
        """The features at the taps ``layers`` (one name or a sequence) for an input batch.

        Args:
            x: the prepared input (N, 3, 227, 227) for CaffeNet, (N, 3, 224, 224) for torchvision;
               an array (moved to the network's device; no gradient to it) or a Tensor (gradients
               flow back to it when it requires them).
            layers: tap names from ``conv1`` .. ``fc8``.

        Returns:
            ``{tap: Tensor}`` (N, *tap_shape) for each requested tap. Under ``nn.no_grad()`` (frozen
            encoder) no graph is recorded and the tensors are plain values (``.data``); with gradients
            on (the autoencoder variant) they are part of the graph back to the weights and input.
            Only the steps up to the deepest requested tap are run. Convolutional taps also work
            at other input sizes (other map sizes); fc6..fc8 need pool5 at ``pool5_size`` (6x6).
        """
        layers = self._check_taps(layers)
        steps = {tap: self.TAP_STEPS[tap] for tap in layers}
        last = max(steps.values(), key=self._steps.index)
        kept = self._run(x, last, set(steps.values()))
        return {tap: kept[step] for tap, step in steps.items()}

    def forward(self, x, until=None):
        """The output at the tap ``until`` (``conv1`` .. ``fc8``; None: ``fc8``, the class scores)."""
        tap = self._check_taps(until or "fc8")
        if len(tap) != 1:
            raise ValueError(f"forward: until must be one tap name, got {until!r}")
        return self.features(x, tap)[tap[0]]

    def blobs(self, x, until=None):
        """Every processing step's output, ``{step name: Tensor}`` in order (for study).

        Keys are our step names (:attr:`steps`): ``conv1`` is the convolution's output *before*
        ReLU (``relu1`` after it), ``drop6`` the output of dropout (equal to ``relu6`` in eval mode).
        Caffe computes ReLU and dropout in place, so its blob ``conv1`` is our ``relu1``; see
        :data:`CAFFE_BLOB_STEPS` for the full correspondence. ``until`` (a step name) stops early.
        """
        last = until or self._steps[-1]
        if last not in self._steps:
            raise ValueError(f"unknown step {until!r}; expected one of {', '.join(self._steps)}")
        return self._run(x, last, set(self._steps))

    # --- input ---------------------------------------------------------------------------------
    def prepare(self, images, **kwargs):
        raise NotImplementedError

    def crop_box(self, image_size=IMAGE_SIZE):
        return crop_box(image_size, self.CROP)

    def extra_repr(self):
        return f"widths={self.widths}"


class CaffeNet(_AlexNetBase):
    """Caffe's reference CaffeNet (see the module docstring); input (N, 3, 227, 227) from :func:`prepare`.

    ``widths``: output channels/features of conv1..conv5, fc6..fc8 (the full network by default).
    ``pool5_size``: pool5's side at the input size used (6 at 227x227); it sets fc6's in-features.
    """

    MODEL = "caffenet"
    CROP = CAFFENET_CROP
    GROUPS = {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    TAP_STEPS = {"conv1": "norm1", "conv2": "norm2", "conv3": "relu3", "conv4": "relu4",
                 "conv5": "pool5", "fc6": "relu6", "fc7": "relu7", "fc8": "fc8"}

    def __init__(self, widths=CAFFENET_WIDTHS, pool5_size=6):
        super().__init__(widths, pool5_size)
        c1, c2, c3, c4, c5, f6, f7, f8 = self.widths
        self._add("conv1", nn.Conv2d(3, c1, 11, stride=4))
        self._add("relu1", nn.ReLU())
        self._add("pool1", nn.MaxPool2d(3, 2, ceil_mode=True))
        self._add("norm1", nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0))
        self._add("conv2", nn.Conv2d(c1, c2, 5, padding=2, groups=2))
        self._add("relu2", nn.ReLU())
        self._add("pool2", nn.MaxPool2d(3, 2, ceil_mode=True))
        self._add("norm2", nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0))
        self._add("conv3", nn.Conv2d(c2, c3, 3, padding=1))
        self._add("relu3", nn.ReLU())
        self._add("conv4", nn.Conv2d(c3, c4, 3, padding=1, groups=2))
        self._add("relu4", nn.ReLU())
        self._add("conv5", nn.Conv2d(c4, c5, 3, padding=1, groups=2))
        self._add("relu5", nn.ReLU())
        self._add("pool5", nn.MaxPool2d(3, 2, ceil_mode=True))
        self._add("fc6", nn.Linear(c5 * self.pool5_size ** 2, f6))
        self._add("relu6", nn.ReLU())
        self._add("drop6", nn.Dropout(0.5))
        self._add("fc7", nn.Linear(f6, f7))
        self._add("relu7", nn.ReLU())
        self._add("drop7", nn.Dropout(0.5))
        self._add("fc8", nn.Linear(f7, f8))
        self.fc8.reset_parameters(negative_slope=1.0)  # no ReLU after fc8

    def prepare(self, images, mean="channel"):
        return prepare(images, mean=mean)


class AlexNetTorchvision(_AlexNetBase):
    """torchvision's ``alexnet`` (see the module docstring); input (N, 3, 224, 224) from
    :func:`prepare_torchvision`. Its adaptive average pooling to 6x6 is the identity at 224x224
    and is not implemented: other input sizes, giving another pool5 size, are refused."""

    MODEL = "alexnet_torchvision"
    CROP = TORCHVISION_CROP
    TAP_STEPS = {"conv1": "pool1", "conv2": "pool2", "conv3": "relu3", "conv4": "relu4",
                 "conv5": "pool5", "fc6": "relu6", "fc7": "relu7", "fc8": "fc8"}

    def __init__(self, widths=TORCHVISION_WIDTHS, pool5_size=6):
        super().__init__(widths, pool5_size)
        c1, c2, c3, c4, c5, f6, f7, f8 = self.widths
        self._add("conv1", nn.Conv2d(3, c1, 11, stride=4, padding=2))
        self._add("relu1", nn.ReLU())
        self._add("pool1", nn.MaxPool2d(3, 2))
        self._add("conv2", nn.Conv2d(c1, c2, 5, padding=2))
        self._add("relu2", nn.ReLU())
        self._add("pool2", nn.MaxPool2d(3, 2))
        self._add("conv3", nn.Conv2d(c2, c3, 3, padding=1))
        self._add("relu3", nn.ReLU())
        self._add("conv4", nn.Conv2d(c3, c4, 3, padding=1))
        self._add("relu4", nn.ReLU())
        self._add("conv5", nn.Conv2d(c4, c5, 3, padding=1))
        self._add("relu5", nn.ReLU())
        self._add("pool5", nn.MaxPool2d(3, 2))
        self._add("drop5", nn.Dropout(0.5))
        self._add("fc6", nn.Linear(c5 * self.pool5_size ** 2, f6))
        self._add("relu6", nn.ReLU())
        self._add("drop6", nn.Dropout(0.5))
        self._add("fc7", nn.Linear(f6, f7))
        self._add("relu7", nn.ReLU())
        self._add("fc8", nn.Linear(f7, f8))
        self.fc8.reset_parameters(negative_slope=1.0)  # no ReLU after fc8

    def prepare(self, images):
        return prepare_torchvision(images)


# --- building from weight files ---------------------------------------------------------------------

def _attr_text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def read_widths(arrays, model, source="weights"):
    """The layer widths (conv1..conv5, fc6..fc8) of ``{"conv1.weight": array, ...}`` for ``model``.

    Checks every shape against the layer before it (3 image channels into conv1; conv in-channels x
    groups = the previous out-channels; fc6 in-features = conv5 channels x 6 x 6; biases (out,)).
    Raises :class:`nn.WeightFileError` naming the layer, its shape and the expected shape.
    """
    cls = _NETWORKS[model]
    expected_names = [f"{layer}.{p}" for layer in PARAM_LAYERS for p in ("weight", "bias")]
    missing = [n for n in expected_names if n not in arrays]
    unexpected = sorted(n for n in arrays if n not in expected_names)
    if missing or unexpected:
        raise WeightFileError(f"{source}: not a {model} weight set: missing {missing}, unexpected "
                              f"{unexpected}")
    widths = []
    previous, prev_desc = 3, "the RGB image (3 channels)"
    for layer in PARAM_LAYERS:
        weight = arrays[f"{layer}.weight"]
        shape = tuple(int(s) for s in weight.shape)
        out = shape[0] if shape else 0
        if layer in CONV_LAYERS:
            groups, k = cls.GROUPS[layer], cls.KERNELS[layer]
            expected = (out, previous // groups, k, k)
            fits = len(shape) == 4 and shape == expected and previous % groups == 0 and out % groups == 0
            how = f"{k}x{k} kernels" + (f", {groups} groups" if groups > 1 else "")
        else:
            features_in = previous * 36 if layer == "fc6" else previous
            expected = (out, features_in)
            fits = len(shape) == 2 and shape == expected
            how = "fully connected" + (" on the 6x6 pool5 maps" if layer == "fc6" else "")
        if not fits or out < 1:
            raise WeightFileError(f"{source}: {layer}.weight has shape {shape} but {model} expects "
                                  f"{expected} there ({how}) after {prev_desc}")
        bias = tuple(int(s) for s in arrays[f"{layer}.bias"].shape)
        if bias != (out,):
            raise WeightFileError(f"{source}: {layer}.bias has shape {bias} but {layer}.weight "
                                  f"{shape} expects ({out},)")
        widths.append(out)
        previous, prev_desc = out, f"{layer}.weight {shape} ({out} outputs)"
    return tuple(widths)


def _load(cls, weights):
    if weights is None:
        return cls()
    path = os.fspath(weights)
    arrays, attrs = nn.load_arrays(path)
    fmt = _attr_text(attrs.get("format"))
    if fmt is not None and fmt != nn.serialization.FORMAT:
        raise WeightFileError(f"{path}: format attribute is {fmt!r}, not {nn.serialization.FORMAT!r}; "
                              "convert foreign weights with cli.py import-weights")
    model = _attr_text(attrs.get("model"))
    if model != cls.MODEL:
        builder = {"caffenet": "caffenet(weights=...)",
                   "alexnet_torchvision": "alexnet_torchvision(weights=...)"}.get(model)
        hint = f"; load it with {builder}" if builder else ""
        raise WeightFileError(f"{path}: holds weights of model {model!r} but {cls.MODEL!r} was asked "
                              f"for{hint}")
    net = cls(read_widths(arrays, cls.MODEL, path))
    net.load_state_dict(arrays, strict=True, source=path)
    return net


def caffenet(weights=None):
    """CaffeNet in evaluation mode; ``weights``: a path to our HDF5 weight file (``model`` =
    ``caffenet``; widths from the file), or None for random weights (meaningless features)."""
    return _load(CaffeNet, weights).eval()


def alexnet_torchvision(weights=None):
    """torchvision's AlexNet in evaluation mode; ``weights`` as :func:`caffenet` (``model`` =
    ``alexnet_torchvision``)."""
    return _load(AlexNetTorchvision, weights).eval()


_NETWORKS = {"caffenet": CaffeNet, "alexnet_torchvision": AlexNetTorchvision}


def build(model, weights=None):
    """``caffenet`` or ``alexnet_torchvision`` by name."""
    if model not in _NETWORKS:
        raise OptionError(f"unknown encoder {model!r}; expected one of {', '.join(_NETWORKS)}")
    return caffenet(weights) if model == "caffenet" else alexnet_torchvision(weights)


# --- input preparation ------------------------------------------------------------------------------

def resize_bilinear(image, size):
    """Resize (H, W, C) float ``image`` to ``size`` = (h, w) by bilinear interpolation with pixel
    centres aligned (OpenCV's INTER_LINEAR, as Caffe's convert_imageset resizes; no antialiasing)."""
    h, w = image.shape[:2]
    oh, ow = size
    if (h, w) == (oh, ow):
        return image

    def axis(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, wy = axis(h, oh)
    x0, x1, wx = axis(w, ow)
    wy, wx = wy[:, None, None], wx[None, :, None]
    top = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx
    bottom = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def _images_256(images):
    """RGB images -> float32 (N, 256, 256, 3), 0-255; each resized (warped) to 256x256 if needed."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = images[None]
    if isinstance(images, np.ndarray):
        batch = [images[i] for i in range(images.shape[0])]
    else:
        batch = list(images)
    if not batch:
        raise ValueError("prepare: no images given")
    out = np.empty((len(batch), IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)
    for i, image in enumerate(batch):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"prepare: image {i} has shape {image.shape}; expected RGB (H, W, 3), 0-255")
        out[i] = resize_bilinear(image.astype(np.float32), (IMAGE_SIZE, IMAGE_SIZE))
    return out


def crop_box(image_size=IMAGE_SIZE, crop_size=CAFFENET_CROP):
    """(top, left, size): the square region of a square image of side ``image_size`` that the centre
    ``crop_size`` crop of its 256x256 version covers; ``image[top:top + size, left:left + size]``.

    For the 256x256 images of the data pipeline: (14, 14, 227) for CaffeNet's 227 crop (Caffe's
    offset (256 - 227) // 2), (16, 16, 224) for torchvision's 224. That region is the decoder's
    training target. For another side the box is scaled back through the resize and rounded to whole
    pixels (an approximation: prepare() warps the whole image to 256x256 first).
    """
    if not np.isscalar(image_size):
        h, w = tuple(image_size)
        if h != w:
            raise ValueError(f"crop_box: image of size {(h, w)} is not square; the pipeline feeds "
                             f"{IMAGE_SIZE}x{IMAGE_SIZE} images")
        image_size = h
    image_size = int(image_size)
    offset = (IMAGE_SIZE - crop_size) // 2
    if image_size == IMAGE_SIZE:
        return offset, offset, crop_size
    scale = image_size / IMAGE_SIZE
    top, size = int(round(offset * scale)), int(round(crop_size * scale))
    return top, top, min(size, image_size - top)


def _centre_crop(batch, crop_size):
    """(N, H, W, C) -> (N, crop, crop, C) at offset (H - crop) // 2 (Caffe's test-time crop)."""
    o = (batch.shape[1] - crop_size) // 2
    return batch[:, o:o + crop_size, o:o + crop_size]


def _mean_bgr(mean, crop_size):
    """The BGR mean to subtract, broadcastable to (N, 3, crop, crop)."""
    if mean is None:
        return np.zeros((3, 1, 1), np.float32)
    if isinstance(mean, str):
        if mean != "channel":
            raise ValueError(f"prepare: mean must be 'channel', None or a BGR array, got {mean!r}")
        return np.asarray(CAFFE_MEAN_BGR, np.float32).reshape(3, 1, 1)
    mean = np.asarray(mean, np.float32)
    if mean.shape in ((3,), (3, 1, 1)):
        return mean.reshape(3, 1, 1)
    if mean.ndim == 3 and mean.shape[0] == 3 and mean.shape[1] == mean.shape[2] \
            and mean.shape[1] in (IMAGE_SIZE, crop_size):
        o = (mean.shape[1] - crop_size) // 2
        return mean[:, o:o + crop_size, o:o + crop_size]
    raise ValueError(f"prepare: mean image has shape {mean.shape}; expected a BGR (3, {IMAGE_SIZE}, "
                     f"{IMAGE_SIZE}) image (centre-cropped), (3, {crop_size}, {crop_size}), or (3,) "
                     "per-channel values")


def prepare(images, mean="channel"):
    """RGB images -> CaffeNet input (N, 3, 227, 227) float32 (host array).

    Args:
        images: (N, H, W, 3) or one (H, W, 3) array, or a list of (H, W, 3) arrays; RGB, uint8 or
            float, 0-255. Images that are not 256x256 are first resized (warped, aspect not kept)
            to 256x256 bilinearly (:func:`resize_bilinear`); the data pipeline feeds 256x256.
        mean: ``"channel"`` (B 104, G 117, R 123), a BGR mean image (3, 256, 256) (centre-cropped,
            like Caffe's ``ilsvrc_2012_mean``) or (3, 227, 227), a (3,) BGR vector, or None.

    Steps (Caffe's test-time transform): centre crop 227 at offset 14, RGB -> BGR, channels
    first, minus the mean; values stay on the 0-255 scale.
    """
    batch = _centre_crop(_images_256(images), CAFFENET_CROP)
    x = np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2))
    return (x - _mean_bgr(mean, CAFFENET_CROP)).astype(np.float32)


def prepare_torchvision(images):
    """RGB images (as :func:`prepare`) -> torchvision AlexNet input (N, 3, 224, 224) float32:
    resize to 256x256 if needed, centre crop 224 (offset 16), RGB kept, scaled to 0-1 and
    normalised with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)."""
    batch = _centre_crop(_images_256(images), TORCHVISION_CROP)
    x = batch.transpose(0, 3, 1, 2) / np.float32(255)
    mean = np.asarray(TORCHVISION_MEAN_RGB, np.float32).reshape(3, 1, 1)
    std = np.asarray(TORCHVISION_STD_RGB, np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def input_size(model):
    """The network input side: 227 for ``caffenet``, 224 for ``alexnet_torchvision``."""
    return _NETWORKS[model].CROP


__all__ = ["AlexNetTorchvision", "CAFFE_BLOB_STEPS", "CAFFE_MEAN_BGR", "CaffeNet", "TAPS", "TAP_SHAPES",
           "TORCHVISION_TAP_SHAPES", "alexnet_torchvision", "build", "caffenet", "crop_box",
           "feature_shape", "input_size", "prepare", "prepare_torchvision", "read_widths",
           "resize_bilinear"]
