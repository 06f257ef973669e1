"""The authors' released inversion decoders (``invert_alexnet_*`` caffemodels) in our decoders.

A released caffemodel holds the decoder's parametric layers in network order: ``InnerProduct``,
``Convolution`` and ``Deconvolution`` (Caffe's up-convolution, weight (C_in, C_out/groups, kH,
kW) as our ``ConvTranspose2d``). They are matched, in order, with the rows of our layer table
(``fc``, ``conv``, ``upconv``): the kinds must agree and the shapes must chain; the channel counts
are taken from the file. Legacy 4-D blobs of fully connected layers ((1, 1, out, in) and
(1, 1, 1, out)) are reshaped to (out, in) and (out,).
"""
import os

import numpy as np

import nn
from nn.serialization import WeightFileError, save_arrays

from weights_import import drop_legacy_axes, read_caffemodel_layers

from ..networks import decoders

CAFFE_KIND = {"InnerProduct": "fc", "Convolution": "conv", "Deconvolution": "upconv"}


def released_arrays(path, name):
    """``{"upconv1.weight": array, ...}`` for representation ``name`` from a released caffemodel."""
    rows = [row for row in decoders.representation(name).table if row.kind != "reshape"]
    layers = [(n, t, b) for n, t, b in read_caffemodel_layers(path) if t in CAFFE_KIND]
    if len(layers) != len(rows):
        raise WeightFileError(f"{path}: {len(layers)} parametric layers ({[n for n, _, _ in layers]}), "
                              f"but the {name} decoder has {len(rows)} ({[r.name for r in rows]})")
    arrays = {}
    for row, (caffe_name, caffe_type, blobs) in zip(rows, layers):
        if CAFFE_KIND[caffe_type] != row.kind:
            raise WeightFileError(f"{path}: layer {caffe_name} is a {caffe_type}, but {name}'s layer "
                                  f"{row.name} is a {row.kind}")
        if len(blobs) != 2:
            raise WeightFileError(f"{path}: layer {caffe_name} has {len(blobs)} blobs, expected weight and bias")
        weight_ndim = 2 if row.kind == "fc" else 4
        arrays[f"{row.name}.weight"] = np.asarray(drop_legacy_axes(blobs[0], weight_ndim), np.float32)
        arrays[f"{row.name}.bias"] = np.asarray(drop_legacy_axes(blobs[1], 1), np.float32)
    return arrays


def load_released_decoder(path, name):
    """The ``name`` decoder with the file's channel counts and weights."""
    return decoders.from_arrays(name, released_arrays(path, name), source=path)


def import_released_decoder(path, name, out):
    """Write a released decoder as our decoder weight file (``model = decoder/<name>``); returns the arrays."""
    model = load_released_decoder(path, name)
    arrays = {k: nn.to_numpy(v) for k, v in model.state_dict().items()}
    save_arrays(arrays, out, model=f"decoder/{name}", source=f"{os.path.basename(path)} (Caffe caffemodel)")
    return arrays
