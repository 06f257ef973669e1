"""Weight initialisation: He (Kaiming) normal scaled for the leaky ReLU that follows each layer.

The paper does not say how its decoders were initialised (its training section), so we use the standard
scaled initialisation: w ~ N(0, gain^2 / fan_in) with gain = sqrt(2 / (1 + slope^2)), biases 0.
``fan_in`` is the number of inputs feeding one output: C_in/groups kH kW for a convolution,
in_features for a linear layer, and (C_in/groups) kH kW / (sH sW) for a transposed convolution
(each output pixel sees about 1/(sH sW) of the kernel taps).
"""
import math

import numpy as np

from . import random


def leaky_relu_gain(negative_slope=0.2):
    return math.sqrt(2.0 / (1.0 + negative_slope ** 2))


def kaiming_normal(shape, fan_in, negative_slope=0.2, dtype=np.float32):
    """A host array of ``shape`` drawn from N(0, gain^2 / fan_in)."""
    std = leaky_relu_gain(negative_slope) / math.sqrt(fan_in)
    return (random.generator().standard_normal(shape) * std).astype(dtype)
