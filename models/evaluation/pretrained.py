"""Trained decoders as small files: exported from a training checkpoint, shipped in
``models/evaluation/pretrained/<feature>.h5``, and loaded by ``load_decoder`` (and by ``cli.py reconstruct``
when no ``--checkpoint`` is given).

A decoder file holds what reconstruction needs and nothing else: the weights in float16 (half
the size; the decoders compute in float32, into which they are widened on loading), and as
root attributes ``kind = "decoder"``, ``config`` (JSON: the run's configuration, from which the
network is rebuilt and its features scaled), ``training`` (JSON: the run's settings and the
step exported) and ``held_out`` (JSON: the error on the run's validation photos at that step,
beside the mean-image and ridge baselines fitted on the same training photos). Beside the weights:
``baselines/`` (float16), the mean image and the ridge regression fitted on the decoder's training
photos, the ridge in its compact form (:func:`models.scoring.baselines.baseline_arrays`), with the
root attribute ``baselines`` (JSON: how they were fitted); ``training_photos`` (N, 32) uint8, the
SHA-256 digest of each training photo file (:mod:`models.data.provenance`).
"""
import json
import os

import numpy as np

from nn.backend import to_numpy
from nn.serialization import (FORMAT, VERSION, WeightFileError, json_attr, open_h5, read_groups,
                              write_groups, write_h5)

from ..data.cache import FeatureCache, run_cache
from ..data.provenance import DIGEST_BYTES, photo_digests, source_photos
from ..scoring.baselines import (ProjectedRidge, RidgeRegression, baseline_arrays, baseline_sample,
                                 baselines_from_arrays, fit_on_samples)
from ..training.checkpoint import checkpoint_config, decoder_group, validate_config
from ..training.options import TRAINING_KEYS

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
BASELINE_COMPONENTS = 64  # principal components of the targets the stored ridge regression keeps


def shipped_decoder(feature):
    """The path of the shipped decoder for ``feature``, or None."""
    path = os.path.join(PRETRAINED_DIR, f"{feature}.h5")
    return path if os.path.exists(path) else None


def is_shipped(path):
    """Whether ``path`` is one of the shipped decoder files."""
    return os.path.dirname(os.path.realpath(path)) == os.path.realpath(PRETRAINED_DIR)


def training_baselines(cache, components=BASELINE_COMPONENTS):
    """``({name: model}, record, ridge)``: the baselines fitted on a training ``cache``, the ridge
    projected onto ``components`` principal components (what a decoder file stores), how they were
    fitted, and the full ridge regression before its projection (to score the projection against)."""
    features, targets, groups = baseline_sample(cache)
    models = fit_on_samples(features, targets, groups)
    ridge = models[RidgeRegression.name]
    models[ridge.name] = ProjectedRidge.from_ridge(ridge, targets, components)
    record = {"samples": len(targets), "photos": len(set(groups)), "components": components,
              "relative_lambda": ridge.relative_lambda}
    return models, record, ridge


def training_cache_of(checkpoint, config):
    """The training cache of the run that wrote ``checkpoint`` (beside it, or in the run folder
    ``config["out"]``), or None when there is none (e.g. a copied checkpoint)."""
    candidates = [run_cache(os.path.dirname(os.path.abspath(checkpoint)), "train")]
    if config.get("out"):
        candidates.append(run_cache(config["out"], "train"))
    return next((c for c in candidates if os.path.exists(c)), None)


def export_decoder(checkpoint, out, recipe="", components=BASELINE_COMPONENTS):
    """Write the decoder of a training ``checkpoint`` as a float16 decoder file, with the baselines
    and the digests of its training photos when the run's training cache is at hand; returns its
    ``held_out`` record. ``recipe``: how the run was made (a command line), kept in ``training``."""
    with open_h5(checkpoint) as f:  # opened (and its checksum verified) once
        config = checkpoint_config(f, checkpoint)
        step, history = int(f.attrs["step"]), json_attr(f, "history", checkpoint, list)
        weights = read_groups(f[decoder_group(f)])  # the moving average where the run kept one
    errors = dict(history)
    cache_path = training_cache_of(checkpoint, config)
    val_cache = cache_path and run_cache(os.path.dirname(cache_path), "val")
    held_out = {"photos": _photo_count(val_cache) if val_cache else None,  # a count: paths are the machine's
                "step": step, "decoder": errors.get(step), "baselines": config.get("baselines", {})}
    training = {key: config.get(key) for key in TRAINING_KEYS}
    training.update(step=step, recipe=recipe, source=os.path.basename(os.path.dirname(os.path.abspath(checkpoint))))
    keep = {key: config[key] for key in ("feature", "width", "min_channels", "image_size", "feature_scale", "feature_shape",
                                         "channel_scale", "weights") if key in config}
    keep["weights"] = None  # a path on the machine that trained it (AlexNet features: pass --weights)
    baselines, digests = None, []
    if cache_path is not None:
        cache = FeatureCache(cache_path)
        try:
            if not config.get("train_encoder"):
                baselines = training_baselines(cache, components)[:2]
            digests = list(photo_digests(source_photos(cache.files)))
        finally:
            cache.close()
    write_decoder_file(out, keep, training, held_out, weights, baselines, digests)
    return held_out


def _photo_count(cache_path):
    """How many photos the cache at ``cache_path`` was built from, or None where there is none."""
    if not os.path.exists(cache_path):
        return None
    cache = FeatureCache(cache_path)
    try:
        return len(source_photos(cache.files))
    finally:
        cache.close()


def write_decoder_file(out, config, training, held_out, weights, baselines=None, training_photos=()):
    """Write a decoder file (the layout in this module's docstring): ``weights`` stored in float16;
    ``baselines``: ``({name: model}, record)`` as :func:`training_baselines` gives, or None;
    ``training_photos``: the 32-byte digests of the training photo files."""
    def fill(f):
        f.attrs.update(format=FORMAT, version=VERSION, kind="decoder", config=json.dumps(config),
                       training=json.dumps(training), held_out=json.dumps(held_out))
        write_groups(f.create_group("model"), {k: to_numpy(v).astype(np.float16) for k, v in weights.items()})
        if baselines is not None:
            models, record = baselines
            f.attrs["baselines"] = json.dumps(record)
            write_groups(f.create_group("baselines"), baseline_arrays(models))
        if training_photos:
            digests = np.frombuffer(b"".join(sorted(training_photos)), np.uint8).reshape(-1, DIGEST_BYTES)
            f.create_dataset("training_photos", data=digests)

    write_h5(out, fill)


def read_decoder_extras(path):
    """``(baselines, record, digests)`` of a decoder file: its baselines ({name: model}; None where
    it carries none), how they were fitted (``record``), the set of its training photos' digests."""
    with open_h5(path) as f:
        try:
            models = baselines_from_arrays(read_groups(f["baselines"])) if "baselines" in f else None
            record = json_attr(f, "baselines", path) if "baselines" in f.attrs else {}
            digests = {bytes(row) for row in np.asarray(f["training_photos"], np.uint8)} if "training_photos" in f else set()
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightFileError(f"{path}: its baselines or training photos are malformed ({exc}); "
                                  "re-create the file") from None
    return models, record, digests


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
