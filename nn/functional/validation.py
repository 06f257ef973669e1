"""Argument checks shared by the ops: one clear ValueError naming the op and both shapes."""
import numbers

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


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def pair(value, name):
    """An int (Python's or NumPy's) or a pair of ints as a (height, width) pair of Python ints."""
    if _is_int(value):
        return int(value), int(value)
    try:
        value = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(value) != 2 or not all(_is_int(v) for v in value):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(value[0]), int(value[1])


def check_positive(op, **counts):
    """Sizes that must be at least 1 (channels, features)."""
    for name, value in counts.items():
        if not _is_int(value) or value < 1:
            raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
