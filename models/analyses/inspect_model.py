"""Study tools: a layer-by-layer table of a network, and gradient checks of ops and models.

:func:`layer_table` runs one input through a model with a forward hook on every leaf module and
records, per layer, the output shape, the parameter count, the FLOPs for one image (a multiply-add
counts 2) and the activation statistics (mean, std, fraction of zeros, max):

    conv2d            2 * H_out W_out C_out * (C_in / groups) k_h k_w
    conv_transpose2d  2 * H_in W_in C_in * (C_out / groups) k_h k_w
    linear            2 * D_in D_out

Other layers (activations, pooling, LRN, reshaping) are counted as 0 FLOPs.

:func:`gradient_table` runs one backward of the loss a network trains on (a decoder: the
reconstruction loss against the photo, summed over pixels as in training; a classifier: the top
class's score) and records, per layer with weights, the norm, mean and largest magnitude of the
gradient with respect to its output (a full backward hook) and to its weights (``.grad``).
:func:`inspected_decoder` decides which decoder ``cli.py inspect`` shows: the one a user would run.

:func:`check_gradients` runs :func:`nn.gradcheck` in float64 on an op with small random inputs
(the op table, :data:`nn.functional.op_table.OPS`) or on a tiny model (a decoder at width 1/32 and
image size 64, or a reduced CaffeNet) and returns the worst relative error per input and parameter.
"""
import numpy as np

import nn
import nn.functional as F
from nn.errors import OptionError
from nn.functional.op_table import OPS
from nn.functional.sparse_conv import active_pixels, tap_pairs
from nn.functional.validation import pair

from ..networks import alexnet, decoders
from ..data.encoders import Encoder, scale_array, targets_to_float
from ..evaluation.pretrained import shipped_decoder
from ..training.train import TrainConfig

NETWORKS = ("caffenet", "alexnet_torchvision")
TINY_CAFFENET_WIDTHS = (4, 8, 8, 8, 8, 8, 8, 5)


def flops(module, inputs, output):
    """Multiply-adds x 2 of one application of a leaf ``module`` per image (0 for non-linear
    layers); for a convolution of a sparse input, those its filled pixels' taps do."""
    if isinstance(module, nn.SparseInputConv2d):
        c_out, c_in, kh, kw = module.weight.shape
        stride, padding = pair(module.stride, "stride"), pair(module.padding, "padding")
        pairs = tap_pairs(active_pixels(inputs[0].data), (kh, kw), stride, padding, output.shape[2:])
        return 2 * sum(len(pick) for _, _, pick, _ in pairs) * c_in * c_out // inputs[0].shape[0]
    if isinstance(module, nn.Conv2d):
        c_out, c_in_per_group, kh, kw = module.weight.shape
        return 2 * int(np.prod(output.shape[1:])) * c_in_per_group * kh * kw
    if isinstance(module, nn.ConvTranspose2d):
        c_in, c_out_per_group, kh, kw = module.weight.shape
        return 2 * int(np.prod(inputs[0].shape[1:])) * c_out_per_group * kh * kw
    if isinstance(module, nn.Linear):
        return 2 * module.weight.shape[0] * module.weight.shape[1]
    return 0


def layer_table(model, x):
    """One row per leaf module, in the order they run: ``{"layer", "kind", "output", "params",
    "flops", "mean", "std", "zeros", "max"}`` for the input batch ``x`` (statistics over the batch)."""
    rows, handles = [], []

    def record(name):
        def hook(module, inputs, output):
            values = nn.to_numpy(output.data).astype(np.float64)
            rows.append({"layer": name, "kind": type(module).__name__, "output": tuple(output.shape[1:]),
                         "params": sum(p.size for p in module._parameters.values() if p is not None),
                         "flops": flops(module, inputs, output), "mean": values.mean(), "std": values.std(),
                         "zeros": float((values == 0).mean()), "max": values.max()})
        return hook

    for name, module in model.named_modules():
        if name and not module._modules:
            handles.append(module.register_forward_hook(record(name)))
    try:
        with nn.no_grad():
            model(nn.Tensor(nn.to_device(x, model.device)))  # the input follows the model
    finally:
        for handle in handles:
            handle.remove()
    return rows


def model_and_input(name, photo=None, weights=None, width=1.0, image_size=None, min_channels=1):
    """(model, input batch of one, target) for ``name``: ``caffenet``/``alexnet_torchvision`` (input: the
    prepared photo, or zeros; target None) or a representation (its decoder; input: the photo's
    features, or zeros; target: the photo as the decoder's output (1, 3, T, T), or None)."""
    if name in NETWORKS:
        network = alexnet.build(name, weights)
        size = alexnet.input_size(name)
        x = network.prepare(photo[None]) if photo is not None else np.zeros((1, 3, size, size), np.float32)
        return network, x, None
    encoder = Encoder(name, image_size, weights, workers=1) if photo is not None else None
    shape = decoders.feature_shape(name, image_size)
    x = encoder.features(photo[None]) if encoder else np.zeros((1,) + shape, np.float32)
    target = targets_to_float(encoder.targets(photo[None])) if encoder else None
    return decoders.build(name, width, image_size, in_channels=x.shape[1], min_channels=min_channels), x, target


def trained_model_and_input(trained, photos=None):
    """(a trained decoder's network, its input batch of one, target): the scaled features of
    ``photos[:1]`` and that photo as the decoder's output, or zeros of the feature shape and None."""
    if photos is not None:
        features = trained.encoder.features(photos[:1])
        target = targets_to_float(trained.encoder.targets(photos[:1]))
        return trained.model, features * scale_array(trained.scale, features), target
    shape = (trained.model.in_channels,) + decoders.feature_shape(trained.feature, trained.config["image_size"])[1:]
    return trained.model, np.zeros((1,) + shape, np.float32), None


def inspected_decoder(name, checkpoint=None, preset=None, width=None, image_size=None, min_channels=None):
    """Which decoder of representation ``name`` to inspect, as ``(checkpoint or None, settings)``:
    the named ``checkpoint``; else, when no preset or setting is given, the shipped decoder where
    there is one (models/evaluation/pretrained); else an untrained decoder at the ``preset``'s
    settings (default ``cpu``: the decoder ``cli.py train`` makes), each given setting overriding."""
    if checkpoint:
        return checkpoint, None
    given = {"width": width, "image_size": image_size, "min_channels": min_channels}
    if preset is None and all(v is None for v in given.values()) and shipped_decoder(name):
        return shipped_decoder(name), None
    settings = {key: getattr(TrainConfig(feature=name, preset=preset, **given).resolved(), key) for key in given}
    shallow = decoders.representation(name).shallow  # AlexNet's input is fixed: a size is for shallow features
    settings["image_size"] = (settings["image_size"] or decoders.SHALLOW_IMAGE_SIZE) if shallow else None
    return None, settings


def _stats(array):
    """(L2 norm, mean, largest magnitude) of an array, on the host in float64."""
    values = nn.to_numpy(array).astype(np.float64)
    return float(np.linalg.norm(values)), float(values.mean()), float(np.abs(values).max())


def gradient_table(model, x, target=None):
    """One row per leaf module with weights, in the order backward reaches them reversed (forward
    order): ``{"layer", "grad_out_norm", "grad_out_mean", "grad_out_max", "grad_w_norm",
    "grad_w_mean", "grad_w_max"}`` after one backward of ``loss`` on the batch ``x``: with a
    ``target`` the reconstruction loss (squared error summed over pixels, averaged over the batch,
    as in training), else the largest output (a classifier's top class score). The parameters'
    ``.grad`` are left as they were."""
    grads_out, handles = {}, []
    layers = [(name, m) for name, m in model.named_modules() if name and not m._modules and m._parameters]
    saved = [(p, p.grad) for p in model.parameters()]

    def record(name):
        def hook(module, grad_input, grad_output):
            grads_out[name] = _stats(grad_output[0])
        return hook

    for name, module in layers:
        handles.append(module.register_full_backward_hook(record(name)))
    try:
        for p in model.parameters():
            p.grad = None
        y = model(nn.Tensor(nn.to_device(x, model.device)))
        loss = F.mse_loss(y, nn.Tensor(nn.to_device(target, model.device)), reduction="paper") \
            if target is not None else y.max()
        loss.backward()
        rows = []
        for name, module in layers:
            weight = module._parameters.get("weight")
            out = grads_out.get(name, (float("nan"),) * 3)
            w = _stats(weight.grad) if weight is not None and weight.grad is not None else (float("nan"),) * 3
            rows.append(dict(zip(["layer", "grad_out_norm", "grad_out_mean", "grad_out_max", "grad_w_norm",
                                  "grad_w_mean", "grad_w_max"], (name,) + out + w)))
        return rows, loss.item()
    finally:
        for handle in handles:
            handle.remove()
        for p, grad in saved:
            p.grad = grad


def tiny_model(name):
    """A model small enough for float64 gradient checks, with its input batch of one (random)."""
    rng = np.random.default_rng(0)
    if name == "caffenet":
        network = alexnet.CaffeNet(TINY_CAFFENET_WIDTHS).eval()  # dropout off: a deterministic function
        return network, rng.standard_normal((1, 3, alexnet.CAFFENET_CROP, alexnet.CAFFENET_CROP)) * 50
    image_size = 64 if decoders.representation(name).shallow else None
    shape = decoders.feature_shape(name, image_size)
    return decoders.build(name, 1 / 32, image_size), rng.random((1,) + shape)


# name: (function of tensors, shapes of its inputs); weights and biases are inputs too.


def gradcheck_targets():
    """Everything :func:`check_gradients` accepts: the ops, ``caffenet`` and the representations."""
    return list(OPS) + ["caffenet"] + list(decoders.REPRESENTATIONS)


def check_gradients(target, seed=0, device="cpu"):
    """``{input or parameter name: worst relative error}`` of ``target`` (an op or a model name),
    computed on ``device`` at a point drawn from ``seed`` (for a model, its weights too: the
    library's random stream is seeded with it, as ``nn.random.seed`` does)."""
    if target in OPS:
        fn, shapes = OPS[target].call, OPS[target].shapes
        rng = np.random.default_rng(seed)
        # away from 0, so that ReLU-like kinks are not straddled by the finite differences
        inputs = [nn.to_device(rng.uniform(0.1, 1.0, s) * rng.choice([-1, 1], s), device) for s in shapes]
        return nn.gradcheck(fn, inputs, seed=seed, raise_on_failure=False)
    if target in gradcheck_targets():
        nn.random.seed(seed)
        model, x = tiny_model(target)
        model.to(device)
        return nn.gradcheck(model, [nn.to_device(x, device)], params=model, seed=seed, raise_on_failure=False)
    raise OptionError(f"unknown op or model {target!r}; expected one of {', '.join(gradcheck_targets())}")
