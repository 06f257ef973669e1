"""The decoders: up-convolutional networks from a feature representation back to the image.

Each architecture is written as a table that reads like the supplementary's Tables 2-6: one row
per layer, ``(name, kind, out_channels, kernel, stride, input)``, where ``input`` is ``"input"``
(the features), ``None`` (the row above) or a tuple of layer names whose outputs are concatenated
along channels (the "J" layers joining streams A and B). Padding follows from kernel and stride:
a k x k stride-s convolution uses padding (k - 1) // 2 (5/2 halves, 3/1 keeps or halves); an
up-convolution with kernel 4 stride 2 uses padding 1 and one with kernel 5 stride 2 padding 2
and output padding 1, so both exactly double the size (the paper's supplementary decoder tables).

After every layer but the last comes a leaky ReLU with slope 0.2 (``LEAKY_SLOPE``); the last layer
is linear. Every layer starts from He normal weights for that slope (nn/init.py; the paper is silent).
``width`` multiplies every hidden channel count (the input and the 3 output channels stay), and
``image_size`` changes the input size of the shallow representations, so small CPU runs use
the same architecture at reduced scale. ``min_channels`` keeps a narrowed layer from falling
below that many channels (never above the table's own count): at width 1/4 the SIFT decoder's
last up-convolutions would carry 16 and 8 channels, a bottleneck at the full resolution
(docs/results/README.md measures the floor of 32 that the CPU preset uses).

The registry (:data:`REPRESENTATIONS`) maps each of the paper's eleven representation names to a
:class:`Representation`: its feature shape, decoder table, output size and cache storage, and for
the shallow ones how minifeat computes them (the encoders and the cache use it too).
"""
from collections import OrderedDict, namedtuple

import numpy as np

import nn
import nn.functional as F
from nn.errors import OptionError, WeightFileError

import minifeat
from minifeat.lbp import mirror_permutation as lbp_mirror_permutation

from . import alexnet

Layer = namedtuple("Layer", "name kind out kernel stride input")

LEAKY_SLOPE = 0.2

# Supplementary Table 2: HOG (32x32x31 for a 256x256 image).
HOG = (
    Layer("convA1", "conv", 256, 5, 2, "input"),
    Layer("convA2", "conv", 512, 5, 2, None),
    Layer("convA3", "conv", 1024, 3, 2, None),
    Layer("upconvA1", "upconv", 512, 4, 2, None),
    Layer("upconvA2", "upconv", 256, 4, 2, None),
    Layer("upconvA3", "upconv", 128, 4, 2, None),
    Layer("convB1", "conv", 128, 5, 1, "input"),
    Layer("convB2", "conv", 128, 3, 1, None),
    Layer("convJ1", "conv", 256, 3, 1, ("upconvA3", "convB2")),
    Layer("convJ2", "conv", 128, 3, 1, None),
    Layer("upconvJ4", "upconv", 64, 4, 2, None),
    Layer("upconvJ5", "upconv", 32, 4, 2, None),
    Layer("upconvJ6", "upconv", 3, 4, 2, None),
)

# Supplementary Table 3: SIFT (64x64x133).
SIFT = (
    Layer("conv1", "conv", 256, 5, 2, "input"),
    Layer("conv2", "conv", 512, 3, 2, None),
    Layer("conv3", "conv", 1024, 3, 2, None),
    Layer("conv4", "conv", 2048, 3, 2, None),
    Layer("conv5", "conv", 2048, 3, 1, None),
    Layer("conv6", "conv", 1024, 3, 1, None),
    Layer("upconv1", "upconv", 512, 4, 2, None),
    Layer("upconv2", "upconv", 256, 4, 2, None),
    Layer("upconv3", "upconv", 128, 4, 2, None),
    Layer("upconv4", "upconv", 64, 4, 2, None),
    Layer("upconv5", "upconv", 32, 4, 2, None),
    Layer("upconv6", "upconv", 3, 4, 2, None),
)

# Supplementary Table 4: LBP (16x16x58).
LBP = (
    Layer("convA1", "conv", 256, 5, 2, "input"),
    Layer("convA2", "conv", 512, 5, 2, None),
    Layer("convA3", "conv", 1024, 3, 1, None),
    Layer("upconvA1", "upconv", 512, 4, 2, None),
    Layer("upconvA2", "upconv", 256, 4, 2, None),
    Layer("convB1", "conv", 128, 5, 1, "input"),
    Layer("convB2", "conv", 128, 3, 1, None),
    Layer("convJ1", "conv", 256, 3, 1, ("upconvA2", "convB2")),
    Layer("convJ2", "conv", 128, 3, 1, None),
    Layer("upconvJ3", "upconv", 128, 4, 2, None),
    Layer("upconvJ4", "upconv", 64, 4, 2, None),
    Layer("upconvJ5", "upconv", 32, 4, 2, None),
    Layer("upconvJ6", "upconv", 3, 4, 2, None),
)

# Supplementary Table 5: AlexNet conv5 (6x6x256) -> 192x192.
CONV5 = (
    Layer("conv1", "conv", 256, 3, 1, "input"),
    Layer("conv2", "conv", 256, 3, 1, None),
    Layer("conv3", "conv", 256, 3, 1, None),
    Layer("upconv1", "upconv", 256, 5, 2, None),
    Layer("upconv2", "upconv", 128, 5, 2, None),
    Layer("upconv3", "upconv", 64, 5, 2, None),
    Layer("upconv4", "upconv", 32, 5, 2, None),
    Layer("upconv5", "upconv", 3, 5, 2, None),
)


def fully_connected_table():
    """Supplementary Table 6 (fc8 -> 128x128); fc6 and fc7 use it with a 4096-d input (a project decision; the paper is silent)."""
    return (
        Layer("fc1", "fc", 4096, None, None, "input"),
        Layer("fc2", "fc", 4096, None, None, None),
        Layer("fc3", "fc", 4096, None, None, None),
        Layer("reshape", "reshape", 256, 4, None, None),
        Layer("upconv1", "upconv", 256, 5, 2, None),
        Layer("upconv2", "upconv", 128, 5, 2, None),
        Layer("upconv3", "upconv", 64, 5, 2, None),
        Layer("upconv4", "upconv", 32, 5, 2, None),
        Layer("upconv5", "upconv", 3, 5, 2, None),
    )


def conv_template_table(channels, upconvs):
    """conv1..conv4 (a project decision; the paper is silent): Table 5's template: three 3x3 convolutions keeping ``channels``, then
    ``upconvs`` 5x5 stride-2 up-convolutions halving the channels each time, the last one to 3."""
    rows = [Layer(f"conv{i}", "conv", channels, 3, 1, "input" if i == 1 else None) for i in (1, 2, 3)]
    for i in range(1, upconvs + 1):
        out = 3 if i == upconvs else channels >> i
        rows.append(Layer(f"upconv{i}", "upconv", out, 5, 2, None))
    return tuple(rows)


def _sources(row, previous):
    """The names of the outputs a row reads: the row above, the features, or the streams it joins."""
    if row.input is None:
        return (previous,)
    return (row.input,) if isinstance(row.input, str) else tuple(row.input)


def _padding(kind, kernel, stride):
    """(padding, output_padding) so that a conv keeps/divides and an upconv multiplies the size."""
    if kind == "conv":
        return (kernel - 1) // 2, 0
    return {(4, 2): (1, 0), (5, 2): (2, 1)}[(kernel, stride)]


def scaled(channels, width, min_channels=1):
    """A hidden layer's channel count at width multiplier ``width``: round(channels * width), but at
    least ``min(channels, min_channels)`` and at least 1."""
    return max(1, min(channels, min_channels), int(round(channels * width)))


class Decoder(nn.Module):
    """A decoder built from a layer table; parameters are named as the table (``convJ1.weight``).

    forward: features (N, C, H, W) or (N, D) -> image (N, 3, S, S).
    """

    def __init__(self, table, in_channels, width=1.0, out_channels=None, min_channels=1, sparse_input=False):
        """``width``, ``min_channels``: see :func:`scaled`. ``out_channels`` ({layer name: count})
        overrides the table's widths, e.g. to hold a decoder whose weights come from a file.
        ``sparse_input``: the features are mostly empty cells (SIFT's map), so the convolutions that
        read them compute from the filled cells only (nn.SparseInputConv2d: the same results)."""
        super().__init__()
        out_channels = out_channels or {}
        self.table, self.in_channels = table, in_channels
        channels = {"input": in_channels}
        previous = "input"
        for i, row in enumerate(table):
            last = i == len(table) - 1
            c_in = sum(channels[s] for s in _sources(row, previous))
            out = out_channels.get(row.name, row.out if last else scaled(row.out, width, min_channels))
            if row.kind == "conv":
                padding, _ = _padding("conv", row.kernel, row.stride)
                conv = nn.SparseInputConv2d if sparse_input and row.input == "input" else nn.Conv2d
                layer = conv(c_in, out, row.kernel, row.stride, padding)
            elif row.kind == "upconv":
                padding, output_padding = _padding("upconv", row.kernel, row.stride)
                layer = nn.ConvTranspose2d(c_in, out, row.kernel, row.stride, padding, output_padding)
            elif row.kind == "fc":
                layer = nn.Linear(c_in, out)
            elif row.kind == "reshape":
                side = row.kernel
                out = c_in // (side * side)
                layer = nn.Reshape(out, side, side)
            else:
                raise ValueError(f"unknown layer kind {row.kind!r} in row {row}")
            if row.kind != "reshape":
                layer.reset_parameters(negative_slope=LEAKY_SLOPE)  # He normal for the leaky ReLU (nn/init.py)
            setattr(self, row.name, layer)
            channels[row.name] = out
            previous = row.name

    def forward(self, features):
        return run_table(self.table, features, lambda name: getattr(self, name),
                         lambda xs: F.concat(xs, axis=1), lambda x: F.leaky_relu(x, LEAKY_SLOPE))


def run_table(table, features, layer, concat, leaky_relu):
    """Apply a layer table to ``features``: the one walk shared by every framework's decoder.

    ``layer(name)`` returns the callable layer, ``concat(list)`` joins along channels, and
    ``leaky_relu`` follows every layer but the reshape and the last.
    """
    outputs = {"input": features}
    previous = "input"
    for i, row in enumerate(table):
        sources = _sources(row, previous)
        x = outputs[sources[0]] if len(sources) == 1 else concat([outputs[name] for name in sources])
        x = layer(row.name)(x)
        if row.kind != "reshape" and i < len(table) - 1:
            x = leaky_relu(x)
        outputs[row.name] = x
        previous = row.name
    return outputs[previous]


SHALLOW_IMAGE_SIZE = 256


class Representation:
    """One of the paper's representations: its feature shape, the decoder table that inverts it,
    the size of the image that decoder produces, and how the feature cache stores its maps
    (``storage``: "dense", or "sparse": only the filled cells, :mod:`models.data.cache`)."""
    shallow = False  # computed by minifeat on the photo (else by CaffeNet, models.networks.alexnet)
    mirror_channels = None  # see ShallowFeature

    def __init__(self, name, table, storage="dense"):
        self.name, self.table, self.storage = name, table, storage

    @property
    def sparse(self):
        """Whether the maps are mostly empty cells (stored as their filled cells), which the
        decoder's first convolutions then compute from alone."""
        return self.storage == "sparse"

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


class ShallowFeature(Representation):
    """HOG, SIFT, LBP (:mod:`minifeat`): computed on the greyscale photo of any size (default 256,
    a multiple of 64); the decoder reproduces the photo at that size.

    ``mirror_channels``: where the features of a mirrored photo are the mirrored features with
    their channels permuted, exactly (LBP's: :func:`minifeat.lbp.mirror_permutation`), that
    permutation; the feature cache then makes flipped copies from the stored maps (:meth:`mirror`)
    instead of computing them (docs/SCALE.md, "Flips")."""
    shallow = True

    def __init__(self, name, table, storage="dense", mirror_channels=None):
        super().__init__(name, table, storage)
        self.mirror_channels = mirror_channels

    def mirror(self, features):
        """The features (N, C, H, W) of the mirrored photos."""
        return features[:, self.mirror_channels, :, ::-1]

    def feature_shape(self, image_size=None):
        size = image_size or SHALLOW_IMAGE_SIZE
        h, w, c = minifeat.feature_shape(self.name, (size, size))
        return (c, h, w)

    def output_size(self, image_size=None):
        return image_size or SHALLOW_IMAGE_SIZE

    def check_image_size(self, image_size):
        size = image_size or SHALLOW_IMAGE_SIZE
        if size % 64:
            raise ValueError(f"{self.name} decoder: image_size must be a multiple of 64 (its stream A halves the "
                             f"feature map 3 times), got {size}")

    def compute(self, photos, workers=None):
        """(N, S, S, 3) uint8 photos -> (N, C, H, W) float32 maps."""
        maps = minifeat.extract(self.name, photos, workers=workers)
        return np.ascontiguousarray(maps.transpose(0, 3, 1, 2), dtype=np.float32)


class AlexNetFeature(Representation):
    """A layer of CaffeNet (:mod:`models.networks.alexnet`) on the 227x227 centre crop: a fixed shape; the
    decoder reproduces the crop at ``output_size`` (supplementary Tables 5 and 6)."""

    def __init__(self, name, table, output_size):
        super().__init__(name, table)
        self._output_size = output_size

    def feature_shape(self, image_size=None):
        return tuple(alexnet.TAP_SHAPES[self.name])

    def output_size(self, image_size=None):
        return self._output_size

    def check_image_size(self, image_size):
        pass


REPRESENTATIONS = OrderedDict((r.name, r) for r in (
    ShallowFeature("hog", HOG),
    ShallowFeature("sift", SIFT, storage="sparse"),  # a keypoint in about one 4x4-pixel cell in eighteen
    # (5.8% of the cells of the bundled photos at 128 px, 5.5% at 256 px)
    ShallowFeature("lbp", LBP, mirror_channels=lbp_mirror_permutation()),
    AlexNetFeature("conv1", conv_template_table(96, 3), 216),
    AlexNetFeature("conv2", conv_template_table(256, 4), 208),
    AlexNetFeature("conv3", conv_template_table(384, 4), 208),
    AlexNetFeature("conv4", conv_template_table(384, 4), 208),
    AlexNetFeature("conv5", CONV5, 192),
    AlexNetFeature("fc6", fully_connected_table(), 128),
    AlexNetFeature("fc7", fully_connected_table(), 128),
    AlexNetFeature("fc8", fully_connected_table(), 128),
))


def representation(name):
    try:
        return REPRESENTATIONS[name]
    except KeyError:
        raise OptionError(f"unknown representation {name!r}; expected one of {list(REPRESENTATIONS)}") from None


def feature_shape(name, image_size=None):
    """The shape of one feature input, channels first: (C, H, W) for maps, (D,) for vectors.

    Shallow features depend on the image size (default 256); AlexNet taps are fixed by the
    227x227 input of the full-width CaffeNet.
    """
    return representation(name).feature_shape(image_size)


def output_size(name, image_size=None):
    """Side of the square image the decoder produces (and the training target's size)."""
    return representation(name).output_size(image_size)


def build(name, width=1.0, image_size=None, in_channels=None, min_channels=1):
    """The decoder for representation ``name`` at width multiplier ``width``, no hidden layer
    narrower than ``min_channels`` (:func:`scaled`).

    ``in_channels`` overrides the feature channels (an encoder imported at reduced width).
    """
    rep = representation(name)
    rep.check_image_size(image_size)
    return Decoder(rep.table, in_channels or rep.feature_shape(image_size)[0], width, min_channels=min_channels,
                   sparse_input=rep.sparse)


def from_arrays(name, arrays, source="weights"):
    """The ``name`` decoder with the channel counts of ``arrays`` ({"upconv1.weight": ...}), loaded
    with them; a missing layer or shapes that do not chain raise ValueError naming both shapes."""
    rep = representation(name)
    table = rep.table
    out_axis = {"conv": 0, "fc": 0, "upconv": 1}
    in_axis = {"conv": 1, "fc": 1, "upconv": 0}
    try:
        out_channels = {row.name: arrays[f"{row.name}.weight"].shape[out_axis[row.kind]]
                        for row in table if row.kind != "reshape"}
        in_channels = arrays[f"{table[0].name}.weight"].shape[in_axis[table[0].kind]]
    except KeyError as exc:
        raise WeightFileError(f"{source}: no weights for layer {exc.args[0]} of the {name} decoder") from None
    model = Decoder(table, in_channels, out_channels=out_channels, sparse_input=rep.sparse)
    model.load_state_dict(arrays, source=str(source))
    return model
