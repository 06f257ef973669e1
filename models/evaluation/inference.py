"""Using a trained decoder: load it from a checkpoint, reconstruct photos, evaluate a folder."""
import errno
import functools
import os
import warnings

import numpy as np

import nn
from nn.serialization import WeightFileError, open_h5

from ..networks import decoders
from ..scoring.baselines import baseline_errors, fit_baselines, fit_on_samples
from ..data.cache import CacheError, FeatureCache
from ..data.provenance import photo_digest, photo_digests, source_photos
from ..training.checkpoint import checkpoint_config, load_decoder_weights
from ..training.train import SAMPLE_DATA
from ..data.encoders import Encoder, reconstruct_batches, targets_to_float
from ..data.images import ImageError, center_square, find_images, read_image
from ..scoring.metrics import normalized_error
from .pretrained import (PRETRAINED_DIR, is_shipped, read_decoder_extras, read_decoder_file, shipped_decoder,
                         training_cache_of)


def _decoder_of(cfg):
    """The untrained decoder that a checkpoint's or decoder file's configuration describes."""
    return decoders.build(cfg["feature"], cfg["width"], cfg["image_size"], in_channels=cfg["feature_shape"][0],
                          min_channels=cfg["min_channels"])


class TrainedDecoder:
    """A decoder restored from a training checkpoint, with the encoder it was trained on."""

    def __init__(self, checkpoint, device="cpu", workers=None, weights=None):
        """``checkpoint``: a training checkpoint, a decoder file (models.evaluation.pretrained), or a released
        decoder's weight file (``import-weights --decoder``; its features enter unscaled). ``weights``: CaffeNet weights for AlexNet
        features, overriding the ones the run was trained with."""
        self.device = nn.check_device(device)
        self.baselines_source = None  # set by baselines(): what they were fitted on
        try:
            self._load(checkpoint, device, workers, weights)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:  # a hand-made file's surprises
            raise nn.WeightFileError(f"{checkpoint}: malformed file ({type(exc).__name__}: {exc}); pass a "
                                     "checkpoint.h5 written by 'cli.py train' or a decoder file") from None

    def _load(self, checkpoint, device, workers, weights):
        with open_h5(checkpoint) as f:
            attrs, holds_encoder = dict(f.attrs), "encoder" in f
            is_checkpoint = attrs.get("kind") == "checkpoint"
            cfg = checkpoint_config(f, checkpoint) if is_checkpoint else None
        if is_checkpoint:
            self.model = _decoder_of(cfg)
        elif attrs.get("kind") == "decoder":  # a shipped or exported decoder (models.evaluation.pretrained)
            cfg, arrays, _ = read_decoder_file(checkpoint)
            self.model = _decoder_of(cfg)
            self.model.load_state_dict(arrays, source=str(checkpoint))
        elif str(attrs.get("model", "")).startswith("decoder/"):
            cfg = {"feature": str(attrs["model"])[len("decoder/"):], "image_size": None, "feature_scale": 1.0}
            self.model = decoders.from_arrays(cfg["feature"], nn.load_arrays(checkpoint)[0], source=checkpoint)
        else:
            raise nn.WeightFileError(f"{checkpoint}: neither a training checkpoint nor a decoder file; "
                                     "pass a checkpoint.h5 written by 'cli.py train'")
        self.config, self.feature, self.scale = cfg, cfg["feature"], cfg["feature_scale"]
        self.path, self.is_decoder_file = checkpoint, attrs.get("kind") == "decoder"
        self.encoder = Encoder(self.feature, cfg["image_size"], weights or cfg.get("weights"), workers, device)
        if is_checkpoint:  # the autoencoder variant also restores the encoder trained with this decoder
            load_decoder_weights(checkpoint, self.model, encoder=self.encoder.network if holds_encoder else None)
        self.model.to(device).eval()

    def photos(self, paths):
        """Read and centre-crop photos; returns (photos (N, S, S, 3), kept paths, skipped reasons)."""
        photos, kept, skipped = [], [], []
        for path in paths:
            try:
                photos.append(center_square(read_image(path), self.encoder.image_size))
                kept.append(path)
            except ImageError as exc:
                skipped.append(str(exc))
        return (np.stack(photos) if photos else None), kept, skipped

    def decode(self, features):
        """Features (N, ...) as the encoder gives them -> (N, T, T, 3) float images on 0..255."""
        return reconstruct_batches(self.model, features, self.scale, self.device)

    def reconstruct(self, photos, with_features=False):
        """Photos -> (targets (N, T, T, 3) uint8, reconstructions (N, T, T, 3) float[, features])."""
        features = self.encoder.features(photos)
        result = self.encoder.targets(photos), self.decode(features)
        return result + (features,) if with_features else result

    @property
    def name(self):
        """How figures and messages name this decoder: ``shipped hog decoder``, or the file's name
        with its run folder's (``hog/best.h5``), never a path of this machine."""
        if is_shipped(self.path):
            return f"shipped {self.feature} decoder"
        folder = os.path.basename(os.path.dirname(os.path.abspath(self.path)))
        return f"{folder}/{os.path.basename(self.path)}" if folder else os.path.basename(self.path)

    @property
    def random_weights(self):
        """Whether this decoder's features come from AlexNet with random weights (no --weights)."""
        return self.encoder.network is not None and self.encoder.weights is None

    def training_cache(self):
        """The path of the training cache of this decoder's run (beside the checkpoint, or in the
        run folder it was trained in), or None when there is none (e.g. a copied checkpoint)."""
        return training_cache_of(self.path, self.config)

    @functools.cached_property
    def decoder_extras(self):
        """A decoder file's ``(baselines, record, training digests)`` (:func:`read_decoder_extras`),
        read and verified once however often the baselines and the training photos are asked for."""
        return read_decoder_extras(self.path)

    def baselines(self):
        """The mean image and the ridge regression (:mod:`models.scoring.baselines`) fitted on this
        decoder's training photos: those the decoder file carries, else fitted on the run's training
        cache, else (a copied checkpoint, a decoder file without them) on the bundled photos.
        ``self.baselines_source`` then says which. None for a fine-tuned encoder (autoencoder runs)."""
        self.baselines_source = None
        if self.config.get("train_encoder"):
            return None
        if self.is_decoder_file:
            models, record, _ = self.decoder_extras
            if models is not None:
                self.baselines_source = (f"fitted on {record.get('photos', '?')} of the decoder's training photos "
                                         f"(carried by {os.path.basename(self.path)})")
                return models
        path = self.training_cache()
        if path is not None:
            try:
                cache = FeatureCache(path)
            except (WeightFileError, CacheError) as exc:
                warnings.warn(f"baselines not fitted on the training cache: {exc}")
            else:
                try:
                    self.baselines_source = "fitted on the run's training samples (its cache_train/)"
                    return fit_baselines(cache)
                finally:
                    cache.close()
        return self._bundled_baselines()

    def _bundled_baselines(self):
        """The baselines fitted on the bundled photos (models/data/sample, centre squares): those the
        decoder was trained on where its training photos are known, so that none it was not trained
        on is fitted on."""
        files = find_images(SAMPLE_DATA)
        trained_on = self.training_digests()
        known = [path for path in files if photo_digest(path) in trained_on]
        photos, _, _ = self.photos(known if len(known) >= 2 else files)
        features = self.encoder.features(photos)
        which = "bundled photos it was trained on" if len(known) >= 2 else "bundled photos"
        self.baselines_source = (f"fitted on the {len(photos)} {which} (models/data/sample), not on all of the "
                                 "decoder's training photos (neither its file nor a training cache holds them)")
        return fit_on_samples(features, targets_to_float(self.encoder.targets(photos)))

    def training_digests(self):
        """The SHA-256 digests of the photo files this decoder was trained on (those the decoder file
        records, or those its run's training cache names that are still readable); empty when unknown."""
        if self.is_decoder_file:
            return self.decoder_extras[2]
        path = self.training_cache()
        if path is None:
            return set()
        try:
            cache = FeatureCache(path)
        except (WeightFileError, CacheError):
            return set()
        try:
            return set(photo_digests(source_photos(cache.files)))
        finally:
            cache.close()


def evaluate_folder(trained, folder, batch_size=32, baselines=None, progress=None):
    """The normalised reconstruction error of ``trained`` on every photo in ``folder``, and with
    ``baselines`` ({name: fitted model}) theirs on the same photos (``result["baselines"]``).
    ``result["trained_on"]``: the photos of ``folder`` that ``trained`` was trained on (their
    errors flatter it). ``progress(done, total)`` is called after each batch."""
    files = find_images(folder)
    trained_digests = trained.training_digests()
    trained_on = [path for path in files if trained_digests and photo_digest(path) in trained_digests]
    targets, recons, features, skipped = [], [], [], []
    for i in range(0, len(files), batch_size):
        photos, _, bad = trained.photos(files[i:i + batch_size])
        skipped += bad
        if photos is not None:
            t, r, f = trained.reconstruct(photos, with_features=True)
            targets.append(t)
            recons.append(r)
            if baselines:
                features.append(f)
        if progress is not None:
            progress(min(i + batch_size, len(files)), len(files))
    if not targets:
        raise ImageError(f"{folder}: no usable photo to evaluate on")
    targets, recons = np.concatenate(targets), np.concatenate(recons)
    result = {"feature": trained.feature, "images": len(targets), "skipped": len(skipped),
              "error": normalized_error(targets.astype(np.float32), recons), "trained_on": trained_on}
    if baselines:
        result["baselines"] = baseline_errors(baselines, np.concatenate(features), targets)[0]
    return result


def load_decoder(path=None, feature=None, device="cpu"):
    """A trained decoder ready to reconstruct: ``load_decoder("runs/hog/best.h5")`` (a checkpoint or
    a decoder file), or ``load_decoder(feature="hog")`` for the shipped one.

        decoder = load_decoder(feature="hog")
        targets, reconstructions = decoder.reconstruct(photos)   # photos: (N, S, S, 3) uint8
    """
    if path is None:
        path = shipped_decoder(feature)
        if path is None:
            raise FileNotFoundError(errno.ENOENT, f"no decoder is shipped for {feature}; train one ('cli.py train "
                                    f"{feature}') and pass its checkpoint (--checkpoint runs/{feature}/best.h5)",
                                    os.path.join(PRETRAINED_DIR, f"{feature}.h5"))
    return TrainedDecoder(path, device)
