"""From photos to the inputs and targets of a decoder: features (channels first) and target images.

Shallow features (hog, sift, lbp) are computed by ``minifeat`` on the greyscale 256x256 photo (or
``image_size``); their target is the photo itself. AlexNet features come from CaffeNet on the
centre 227x227 crop; their target is that crop, resized to the decoder's output size (as the paper trains its AlexNet decoders).
"""
import warnings

import numpy as np

import nn

from ..networks import alexnet, decoders
from .images import resize


class Encoder:
    """Computes one representation for batches of (N, S, S, 3) uint8 photos."""

    def __init__(self, name, image_size=None, weights=None, workers=None, device=None):
        self.rep = decoders.representation(name)
        self.name = name
        self.image_size = image_size or decoders.SHALLOW_IMAGE_SIZE
        self.output_size = decoders.output_size(name, image_size)
        self.workers = workers
        self.weights = weights
        self.network = None
        if not self.rep.shallow:
            if weights is None:
                warnings.warn(f"{name}: no CaffeNet weights given (--weights), so AlexNet has random weights and "
                              "its features say little about the photo; import real ones with "
                              "'cli.py import-weights' (see the README)")
            self.image_size = decoders.SHALLOW_IMAGE_SIZE
            self.network = alexnet.caffenet(weights)
            self.network.eval()
            if device:
                self.network.to(device)

    def features(self, photos):
        """(N, S, S, 3) uint8 -> (N, C, H, W) or (N, D) float32 on the host."""
        if self.network is None:
            return self.rep.compute(photos, self.workers)
        with nn.no_grad():
            x = nn.to_device(alexnet.prepare(photos), self.network.device)
            return nn.to_numpy(self.network.features(x, layers=(self.name,))[self.name]).astype(np.float32)

    def targets(self, photos):
        """(N, S, S, 3) uint8 photos -> (N, T, T, 3) uint8 targets at the decoder's output size."""
        if not self.rep.shallow:  # the 227x227 centre crop CaffeNet saw
            top, left, size = alexnet.crop_box(photos.shape[1])
            photos = photos[:, top:top + size, left:left + size]
        return np.stack([resize(p, self.output_size, self.output_size) for p in photos])


def targets_to_float(images):
    """uint8 (N, T, T, 3) -> float32 (N, 3, T, T) in [-0.5, 0.5], the decoders' output scale."""
    return (np.asarray(images, np.float32).transpose(0, 3, 1, 2) / 255.0 - 0.5).astype(np.float32)


def float_to_images(outputs):
    """The decoders' float output (N, 3, T, T) -> (N, T, T, 3) float images on 0..255 (inverse of
    above), clipped to that range as any image is: a pixel outside it cannot be shown, and clipping
    moves every pixel closer to its target, so the reconstruction error is measured on the image a
    person sees (the same rule for the decoders and the baselines)."""
    return np.clip((nn.to_numpy(outputs).transpose(0, 2, 3, 1) + 0.5) * 255.0, 0.0, 255.0)


def scale_array(scale, features):
    """The feature scale (a number, or one per channel) as a float32 array that broadcasts over
    ``features`` (N, C, ...)."""
    scale = np.asarray(scale, np.float32)
    return scale.reshape(scale.shape + (1,) * (np.ndim(features) - 2)) if scale.ndim else scale


def reconstruct_batches(model, features, scale, device, batch_size=16):
    """Decode features (N, ...) with ``model`` in batches under no_grad, scaled as in training;
    returns (N, T, T, 3) floats on 0..255. The model's train/eval mode is left as it was."""
    out, was_training = [], model.training
    model.eval()
    with nn.no_grad():
        for i in range(0, len(features), batch_size):
            batch = np.asarray(features[i:i + batch_size], np.float32)
            x = nn.to_device(batch * scale_array(scale, batch), device)
            out.append(float_to_images(model(nn.Tensor(x)).data))
    model.train(was_training)
    return np.concatenate(out)
