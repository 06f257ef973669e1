"""Inversion by optimisation (Mahendran & Vedaldi, CVPR 2015), the baseline the paper compares with.

Given the features phi0 = phi(x0) of a photo at a CaffeNet layer, search the network input x
(1, 3, 227, 227), BGR minus the mean on the 0-255 scale as :func:`models.networks.alexnet.prepare` gives it,
that minimises

    E(x) = ||phi(x) - phi0||^2 / ||phi0||^2
           + lambda_alpha * mean_i |x_i / B|^alpha
           + lambda_tv * mean_{c,u,v} (((x_{u,v+1} - x_{u,v})^2 + (x_{u+1,v} - x_{u,v})^2) / B^2)^(beta / 2)

with B = 80, a typical pixel magnitude of mean-subtracted images, so that the two image priors (the
alpha-norm keeps the values in range, total variation keeps the image smooth) have weights
independent of the image size and range, as M&V normalise them. The gradient of E is taken through
nn's autodiff (the network's weights frozen) and x follows gradient descent with momentum
(nn.optim.SGD). The learning rate is set from the first gradient so that the first step moves the
pixels by ``first_step`` (RMS, on the 0-255 scale) (a project decision: the method's paper is silent); it is divided by 10 for the last 20% of the
iterations. x starts from seeded Gaussian noise of standard deviation ``init_std``.
"""
import dataclasses

import numpy as np

import nn
import nn.functional as F
from nn.errors import OptionError

from ..networks import alexnet
from ..data.images import resize

PIXEL_SCALE = 80.0  # B


@dataclasses.dataclass
class InversionConfig:
    iters: int = 200
    alpha: float = 6.0
    beta: float = 2.0
    lambda_alpha: float = 1e-5
    lambda_tv: float = 0.5
    momentum: float = 0.9
    first_step: float = 2.0
    init_std: float = 10.0
    seed: int = 0


def feature_distance(features, target):
    """||phi - phi0||^2 / ||phi0||^2 (a Tensor when ``features`` is one)."""
    norm = float((nn.to_numpy(target).astype(np.float64) ** 2).sum())
    return F.sum((features - target) ** 2) / max(norm, 1e-12)


def total_variation(x, beta):
    """mean (((x_{u,v+1} - x_{u,v})^2 + (x_{u+1,v} - x_{u,v})^2) / B^2)^(beta / 2)."""
    corner = x[:, :, :-1, :-1]
    squares = ((x[:, :, :-1, 1:] - corner) ** 2 + (x[:, :, 1:, :-1] - corner) ** 2) / PIXEL_SCALE ** 2
    return F.mean((squares + 1e-8) ** (beta / 2))  # 1e-8: a finite gradient at 0 when beta < 2


def objective(network, layer, x, target, cfg):
    """(E(x), the feature term) for the input Tensor ``x``."""
    distance = feature_distance(network.features(x, (layer,))[layer], target)
    alpha_norm = F.mean(F.abs(x / PIXEL_SCALE) ** cfg.alpha)
    return distance + cfg.lambda_alpha * alpha_norm + cfg.lambda_tv * total_variation(x, cfg.beta), distance


def invert(network, layer, photo, cfg=InversionConfig(), log=None):
    """Optimise an input whose ``layer`` features match those of ``photo`` (S, S, 3 uint8).

    Returns ``{"image": (227, 227, 3) float RGB 0..255, "distance_before", "distance_after"}``, the
    distances being the normalised feature distance at the initial noise and at the result.
    """
    if layer not in alexnet.TAPS:
        raise OptionError(f"optimisation-based inversion works on CaffeNet layers ({', '.join(alexnet.TAPS)}), "
                         f"not {layer!r}")
    device = network.device
    for p in network.parameters():
        p.requires_grad = False
    with nn.no_grad():
        target = network.features(nn.to_device(alexnet.prepare(photo), device), (layer,))[layer].data
    rng = np.random.default_rng(cfg.seed)
    start = rng.standard_normal((1, 3, alexnet.CAFFENET_CROP, alexnet.CAFFENET_CROP)) * cfg.init_std
    x = nn.Tensor(nn.to_device(start.astype(np.float32), device), requires_grad=True)
    optimizer = nn.optim.SGD([x], lr=1.0, momentum=cfg.momentum)
    schedule = nn.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, int(cfg.iters * 0.8)), gamma=0.1)
    distances = []
    for step in range(cfg.iters + 1):
        energy, distance = objective(network, layer, x, target, cfg)
        distances.append(distance.item())
        if step == cfg.iters:
            break
        optimizer.zero_grad()
        energy.backward()
        if step == 0:
            rms = float(np.sqrt(np.mean(nn.to_numpy(x.grad).astype(np.float64) ** 2)))
            lr = cfg.first_step / max(rms, 1e-20)
            optimizer.param_groups[0]["lr"], schedule.base_lrs = lr, [lr]
        optimizer.step()
        schedule.step()
        if log and (step + 1) % max(1, cfg.iters // 10) == 0:
            log(f"step {step + 1}: energy {energy.item():.4g}, feature distance {distances[-1]:.4g}")
    return {"image": input_to_image(nn.to_numpy(x.data)[0]), "distance_before": distances[0],
            "distance_after": distances[-1]}


def input_to_image(x):
    """A CaffeNet input (3, H, W), BGR minus the mean, back to an RGB image (H, W, 3) on 0..255."""
    bgr = x + np.asarray(alexnet.CAFFE_MEAN_BGR, np.float32).reshape(3, 1, 1)
    return np.clip(bgr[::-1].transpose(1, 2, 0), 0, 255)


def inversions_as_targets(images, size):
    """Inverted 227x227 inputs resized to a decoder's output size (to compare with its targets)."""
    return np.stack([resize(image.astype(np.float32), size, size) for image in images])
