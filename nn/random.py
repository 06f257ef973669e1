"""The library's random numbers (dropout masks, weight initialisation), seedable and resumable.

One NumPy ``Generator`` (PCG64) serves both devices: masks and initial weights are drawn on the
host and copied to the device, so a run gives the same numbers on CPU and GPU, and its state can
be saved in a checkpoint and restored to continue a run bit for bit.
"""
import numpy as np

_generator = np.random.default_rng(0)


def seed(value):
    """Restart the library's random stream from ``value``."""
    global _generator
    _generator = np.random.default_rng(value)


def generator():
    """The ``numpy.random.Generator`` every random draw of the library comes from."""
    return _generator


def get_state():
    """The generator's state as a JSON-serialisable dict (for checkpoints)."""
    return _generator.bit_generator.state


def set_state(state):
    _generator.bit_generator.state = state
