"""Argument checks shared by the ops: one clear ValueError naming the op and both shapes."""
import numpy as np


def check_rank(op, what, x, rank, layout):
    if x.ndim != rank:
        raise ValueError(f"{op}: {what} must have rank {rank} {layout}, got shape {tuple(x.shape)}")


def check_float(op, *arrays):
    """All arrays share one floating dtype (float32 in training, float64 in gradient checks)."""
    dtypes = {np.dtype(a.dtype) for a in arrays if a is not None}
    if any(d.kind != "f" for d in dtypes) or len(dtypes) > 1:
        raise ValueError(f"{op}: inputs must share one float dtype (float32, or float64 for gradient "
                         f"checks), got {sorted(str(d) for d in dtypes)}; convert with .astype('float32')")


def pair(value, name):
    """An int or a pair of ints as a (height, width) pair."""
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return value
