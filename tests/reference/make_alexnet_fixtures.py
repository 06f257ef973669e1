"""Write the reference outputs that tests/models/test_alexnet.py compares models/networks/alexnet.py against.

Run once (needs PyTorch; the tests do not):  python tests/reference/make_alexnet_fixtures.py

Builds reduced-width copies of both encoders in PyTorch with the full topology (CaffeNet: grouped
conv2/4/5, ceil-mode max-pooling, LRN; torchvision AlexNet: padded conv1, floor-mode pooling,
adaptive average pooling to 6x6, dropout before fc6/fc7), with seeded random weights, and writes
into tests/fixtures/alexnet/:

- ``images.npz``: ``images`` (2, 256, 256, 3) uint8 random RGB images;
- ``caffenet_small.h5`` / ``torchvision_small.h5``: the weights as OUR HDF5 weight file (layer groups
  conv1..fc8 with datasets weight/bias in PyTorch layouts; root attributes format, version, model,
  source), written with h5py directly so that the test does not depend on nn's writer, then sealed
  (``nn.serialization.seal_file``), as every file featinv reads;
- ``caffenet_small_taps.npz`` / ``torchvision_small_taps.npz``: every tap's output for the images,
  computed in float64 by PyTorch in eval mode from inputs prepared independently here (CaffeNet: crop
  227 at 14, RGB->BGR, minus B 104 G 117 R 123; torchvision: crop 224 at 16, /255, ImageNet mean/std).

Biases are drawn non-zero and the weights are scaled so that every ReLU passes a fair share of units
and the LRN terms matter (the input is on the 0-255 scale for CaffeNet).
"""
import os
from collections import OrderedDict

import h5py
import numpy as np
import torch
from torch import nn

from nn.serialization import seal_file

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(TESTS, "fixtures", "alexnet")
TAPS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")

CAFFENET_SMALL = (12, 32, 48, 48, 32, 32, 32, 20)     # full: 96 256 384 384 256 4096 4096 1000
TORCHVISION_SMALL = (8, 24, 48, 32, 32, 32, 32, 20)   # full: 64 192 384 256 256 4096 4096 1000


def caffenet_torch(widths):
    c1, c2, c3, c4, c5, f6, f7, f8 = widths
    layers = [
        ("conv1", nn.Conv2d(3, c1, 11, stride=4)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)), ("norm1", nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)),
        ("conv2", nn.Conv2d(c1, c2, 5, padding=2, groups=2)), ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)), ("norm2", nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)),
        ("conv3", nn.Conv2d(c2, c3, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(c3, c4, 3, padding=1, groups=2)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(c4, c5, 3, padding=1, groups=2)), ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2, ceil_mode=True)), ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(c5 * 36, f6)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout(0.5)),
        ("fc7", nn.Linear(f6, f7)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout(0.5)),
        ("fc8", nn.Linear(f7, f8)),
    ]
    taps = {"conv1": "norm1", "conv2": "norm2", "conv3": "relu3", "conv4": "relu4", "conv5": "pool5",
            "fc6": "relu6", "fc7": "relu7", "fc8": "fc8"}
    return nn.Sequential(OrderedDict(layers)), taps


def torchvision_torch(widths):
    """torchvision.models.alexnet's layout, spelled out (torchvision is not needed)."""
    c1, c2, c3, c4, c5, f6, f7, f8 = widths
    layers = [
        ("conv1", nn.Conv2d(3, c1, 11, stride=4, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(c1, c2, 5, padding=2)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(c2, c3, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(c3, c4, 3, padding=1)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(c4, c5, 3, padding=1)), ("relu5", nn.ReLU()), ("pool5", nn.MaxPool2d(3, 2)),
        ("avgpool", nn.AdaptiveAvgPool2d((6, 6))), ("flatten", nn.Flatten()),
        ("drop5", nn.Dropout(0.5)), ("fc6", nn.Linear(c5 * 36, f6)), ("relu6", nn.ReLU()),
        ("drop6", nn.Dropout(0.5)), ("fc7", nn.Linear(f6, f7)), ("relu7", nn.ReLU()),
        ("fc8", nn.Linear(f7, f8)),
    ]
    taps = {"conv1": "pool1", "conv2": "pool2", "conv3": "relu3", "conv4": "relu4", "conv5": "pool5",
            "fc6": "relu6", "fc7": "relu7", "fc8": "fc8"}
    return nn.Sequential(OrderedDict(layers)), taps


def randomise(net, gen, input_scale):
    """He-scaled weights; biases N(0, 0.1 * typical activation) so ReLUs are neither all on nor off.

    ``input_scale``: the magnitude of the network input (about 60 for CaffeNet's 0-255 minus mean,
    about 1 for torchvision's normalised input); conv1 is scaled so its outputs stay O(input_scale),
    large enough for the LRN denominator (1 + 1e-4/5 sum x^2) to differ from 1.
    """
    with torch.no_grad():
        for name, module in net.named_children():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                std = (2.0 / fan_in) ** 0.5
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1
                                  * (input_scale if name == "conv1" else 1.0))


def write_weights(path, net, model):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "featinv"
        f.attrs["version"] = 1
        f.attrs["model"] = model
        f.attrs["source"] = "make_alexnet_fixtures"
        for name, module in net.named_children():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                group = f.create_group(name)
                group.create_dataset("weight", data=module.weight.detach().numpy().astype(np.float32))
                group.create_dataset("bias", data=module.bias.detach().numpy().astype(np.float32))
    seal_file(path)


def run_taps(net, taps, x):
    """Every tap's output in float64, eval mode (dropout off)."""
    net = net.double().eval()
    outputs = {}
    hooks = [net._modules[step].register_forward_hook(
        lambda m, i, o, tap=tap: outputs.__setitem__(tap, o.detach().numpy().copy()))
        for tap, step in taps.items()]
    with torch.no_grad():
        net(torch.from_numpy(x.astype(np.float64)))
    for h in hooks:
        h.remove()
    return outputs


def prepare_caffenet(images):
    crop = images[:, 14:241, 14:241].astype(np.float64)
    bgr = crop[..., ::-1].transpose(0, 3, 1, 2)
    return bgr - np.array([104.0, 117.0, 123.0]).reshape(1, 3, 1, 1)


def prepare_torchvision(images):
    crop = images[:, 16:240, 16:240].astype(np.float64).transpose(0, 3, 1, 2) / 255.0
    mean = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    return (crop - mean) / std


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20160506)
    # Smooth-ish random images (blocky noise plus a gradient) so pooling windows rarely tie.
    base = rng.integers(0, 256, size=(2, 32, 32, 3)).repeat(8, axis=1).repeat(8, axis=2)
    noise = rng.integers(-30, 31, size=(2, 256, 256, 3))
    images = np.clip(base + noise, 0, 255).astype(np.uint8)
    np.savez_compressed(os.path.join(OUT, "images.npz"), images=images)

    gen = torch.Generator().manual_seed(1506)
    for name, builder, widths, model, prep, scale in (
            ("caffenet_small", caffenet_torch, CAFFENET_SMALL, "caffenet", prepare_caffenet, 60.0),
            ("torchvision_small", torchvision_torch, TORCHVISION_SMALL, "alexnet_torchvision",
             prepare_torchvision, 1.0)):
        net, taps = builder(widths)
        randomise(net, gen, scale)
        if model == "caffenet":  # bring conv1's outputs to O(100) so that LRN really normalises
            with torch.no_grad():
                net.conv1.weight.mul_(3.0)
        write_weights(os.path.join(OUT, f"{name}.h5"), net, model)
        outputs = run_taps(net, taps, prep(images))
        np.savez_compressed(os.path.join(OUT, f"{name}_taps.npz"),
                            **{tap: outputs[tap].astype(np.float32) for tap in TAPS})
        active = {tap: float((outputs[tap] > 0).mean()) for tap in TAPS}
        print(name, {tap: outputs[tap].shape for tap in TAPS})
        print("  fraction > 0:", {k: round(v, 2) for k, v in active.items()})
        if model == "caffenet":
            with torch.no_grad():
                x = net.double().conv1(torch.from_numpy(prep(images)))
            print("  conv1 output rms", float(x.pow(2).mean().sqrt()))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
