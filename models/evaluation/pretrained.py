"""Trained decoders as small files: exported from a training checkpoint, shipped in
``models/evaluation/pretrained/<feature>.h5``, and loaded by ``load_decoder`` (and by ``cli.py reconstruct``
when no ``--checkpoint`` is given).

A decoder file holds what reconstruction needs and nothing else: the weights in float16 (half
the size; the decoders compute in float32, into which they are widened on loading), and as
root attributes ``kind = "decoder"``, ``config`` (JSON: the run's configuration, from which the
network is rebuilt and its features scaled), ``training`` (JSON: the run's settings and the
step exported) and ``held_out`` (JSON: the error on the run's validation photos at that step,
beside the mean-image and ridge baselines fitted on the same training photos).
"""
import json
import os

import numpy as np

from nn.backend import to_numpy
from nn.serialization import (FORMAT, VERSION, WeightFileError, json_attr, open_h5, read_groups,
                              write_groups, write_h5)

from ..training.checkpoint import checkpoint_config, decoder_group, validate_config
from ..training.options import TRAINING_KEYS

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")


def shipped_decoder(feature):
    """The path of the shipped decoder for ``feature``, or None."""
    path = os.path.join(PRETRAINED_DIR, f"{feature}.h5")
    return path if os.path.exists(path) else None


def export_decoder(checkpoint, out, recipe=""):
    """Write the decoder of a training ``checkpoint`` as a float16 decoder file; returns its
    ``held_out`` record. ``recipe``: how the run was made (a command line), kept in ``training``."""
    with open_h5(checkpoint) as f:  # opened (and its checksum verified) once
        config = checkpoint_config(f, checkpoint)
        step, history = int(f.attrs["step"]), json_attr(f, "history", checkpoint, list)
        weights = read_groups(f[decoder_group(f)])  # the moving average where the run kept one
    errors = dict(history)
    held_out = {"photos": config.get("val"), "step": step, "decoder": errors.get(step),
                "baselines": config.get("baselines", {})}
    training = {key: config.get(key) for key in TRAINING_KEYS}
    training.update(step=step, recipe=recipe, source=os.path.basename(os.path.dirname(os.path.abspath(checkpoint))))
    keep = {key: config[key] for key in ("feature", "width", "min_channels", "image_size", "feature_scale", "feature_shape",
                                         "channel_scale", "weights") if key in config}
    keep["weights"] = None  # a path on the machine that trained it (AlexNet features: pass --weights)

    def fill(f):
        f.attrs.update(format=FORMAT, version=VERSION, kind="decoder", config=json.dumps(keep),
                       training=json.dumps(training), held_out=json.dumps(held_out))
        write_groups(f.create_group("model"), {k: to_numpy(v).astype(np.float16) for k, v in weights.items()})

    write_h5(out, fill)
    return held_out


def read_decoder_file(path):
    """(config, weights as float32 arrays, attributes) of a decoder file."""
    with open_h5(path) as f:
        if f.attrs.get("kind") != "decoder" or "model" not in f:
            raise WeightFileError(f"{path}: not a featinv decoder file (kind=decoder); export one with "
                                  "'cli.py export-decoder CHECKPOINT --out FILE'")
        attrs = {k: json_attr(f, k, path) for k in ("config", "training", "held_out")}
        try:
            weights = {k: np.asarray(v, np.float32) for k, v in read_groups(f["model"]).items()}
        except (TypeError, ValueError) as exc:
            raise WeightFileError(f"{path}: its weights are not numbers ({exc}); re-create the file") from None
    return validate_config(attrs["config"], path), weights, attrs
