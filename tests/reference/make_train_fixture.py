"""Reference data: 20 Adam steps of the HOG decoder (width 1/8, 64x64 images) in PyTorch.

Run once with torch installed: ``python -m tests.reference.make_train_fixture`` from the repository root. Writes
``tests/fixtures/train_reference.npz``: the samples (features and targets of bundled photos) and each step's batch,
a checksum of the initial weights (which the test rebuilds from ``nn.random.seed(0)``), and the
20 losses PyTorch computes from identical weights and batches with the paper's loss.
"""
import glob
import os

import numpy as np
import torch

import nn
from models.networks import decoders
from models.data.encoders import Encoder, targets_to_float
from models.data.images import center_square, read_image
from tests.reference.torch_decoders import torch_decoder

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, BATCH, WIDTH, SIZE, LR = 20, 4, 0.125, 64, 1e-3


def reference_samples():
    """Features and float targets of 12 bundled photos, and the (seeded) sample order of each step."""
    files = sorted(glob.glob(os.path.join(TESTS, "..", "models", "data", "sample", "*.jpg")))[:12]
    photos = np.stack([center_square(read_image(f), SIZE) for f in files])
    encoder = Encoder("hog", SIZE, workers=1)
    feats, targs = encoder.features(photos), targets_to_float(encoder.targets(photos))
    order = np.random.default_rng(0).integers(0, len(files), size=(STEPS, BATCH))
    return feats, targs, order


def initial_decoder():
    nn.random.seed(0)
    return decoders.build("hog", WIDTH, SIZE)


def weight_checksum(model):
    return np.array([float(np.asarray(p.data, np.float64).sum()) for p in model.parameters()])


def main():
    feats, targs, order = reference_samples()
    ours = initial_decoder()
    theirs = torch_decoder("hog", WIDTH, SIZE, ours)
    optimizer = torch.optim.Adam(theirs.parameters(), lr=LR)
    losses = []
    for x, t in zip(feats[order], targs[order]):
        y = theirs(torch.from_numpy(x))
        loss = ((y - torch.from_numpy(t)) ** 2).sum() / len(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    np.savez_compressed(os.path.join(TESTS, "fixtures", "train_reference.npz"), features=feats, targets=targs, order=order,
                        losses=np.array(losses), checksum=weight_checksum(ours), lr=LR)
    print("losses:", np.round(losses, 3))


if __name__ == "__main__":
    main()
