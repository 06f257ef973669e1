"""What every tour script shares: the repository on the import path, the output folder from the
command line, arrays drawn as pictures, and the toy network of 04 and 07."""
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)  # run from anywhere, installed or not

import nn  # noqa: E402  (after the path is set)

SAMPLE = os.path.join(ROOT, "models", "data", "sample")


def output_folder():
    """The folder named on the command line (default tour_out/), created if needed."""
    folder = sys.argv[1] if len(sys.argv) > 1 else "tour_out"
    os.makedirs(folder, exist_ok=True)
    return folder


def picture(array, side=160, limit=None):
    """A 2-D array as an (side', side', 3) uint8 image a person can read: values from blue (-limit,
    by default the most negative) through white (0) to red (+limit), or black to white when none is
    negative and no limit is given;
    each entry a block of pixels (nearest neighbour: a small matrix stays sharp), on a grey square
    so that a figure's tiles keep the array's proportions."""
    a = np.asarray(nn.to_numpy(array), np.float64)
    if limit is not None or a.min() < 0 or not a.any():
        t = np.clip(a / max(limit or np.abs(a).max(), 1e-12), -1, 1)
        rgb = np.stack([1 - np.maximum(-t, 0), 1 - np.abs(t), 1 - np.maximum(t, 0)], -1)
    else:
        t = (a - a.min()) / max(a.max() - a.min(), 1e-12)
        rgb = np.repeat(t[..., None], 3, -1)
    scale = max(1, side // max(a.shape))
    blocks = np.repeat(np.repeat(rgb * 255, scale, 0), scale, 1).astype(np.uint8)
    square = np.full((max(blocks.shape[:2]),) * 2 + (3,), 220, np.uint8)
    top, left = (square.shape[0] - blocks.shape[0]) // 2, (square.shape[1] - blocks.shape[1]) // 2
    square[top:top + blocks.shape[0], left:left + blocks.shape[1]] = blocks
    return square


def toy_network():
    """A 1 -> 32 -> 32 -> 1 perceptron, the network of 04 (training) and 07 (on the GPU)."""
    return nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))


def toy_problem(points=64):
    """x on [-3, 3] and y = sin(2x) + x/3: a curve the network has to bend to."""
    x = np.linspace(-3, 3, points, dtype=np.float32)[:, None]
    return x, (np.sin(2 * x) + x / 3).astype(np.float32)
