"""Weight initialisation: He (Kaiming) normal, scaled for the nonlinearity that follows a layer.

w ~ N(0, gain^2 / fan_in) with gain = sqrt(2 / (1 + slope^2)) for a leaky ReLU of negative slope
``slope`` (He et al. 2015): slope 0 is a ReLU (gain sqrt(2)), slope 1 no nonlinearity (gain 1);
biases 0. The layers (nn.Conv2d, nn.ConvTranspose2d, nn.Linear) start as for a ReLU; a model whose
layers feed another nonlinearity re-draws them with ``layer.reset_parameters(negative_slope=...)``
(the decoders: their leaky ReLU's 0.2, since the paper does not say how its decoders were
initialised). ``fan_in`` is the number of inputs feeding one output: C_in/groups kH kW for a
convolution, in_features for a linear layer, and (C_in/groups) kH kW / (sH sW) for a transposed
convolution (each output pixel sees about 1/(sH sW) of the kernel taps).
"""
import math

import numpy as np

from . import random
from .backend import device_of, to_device


def leaky_relu_gain(negative_slope=0.0):
    """sqrt(2 / (1 + slope^2)): the gain that keeps activations' variance through the nonlinearity."""
    return math.sqrt(2.0 / (1.0 + negative_slope ** 2))


def kaiming_normal(shape, fan_in, negative_slope=0.0, dtype=np.float32):
    """A host array of ``shape`` drawn from N(0, gain^2 / fan_in) (the library's random stream)."""
    std = leaky_relu_gain(negative_slope) / math.sqrt(fan_in)
    return (random.generator().standard_normal(shape) * std).astype(dtype)


def kaiming_normal_(param, fan_in, negative_slope=0.0):
    """Re-draw ``param`` in place from N(0, gain^2 / fan_in) (drawn on the host, copied to its
    device); returns it."""
    param.data[...] = to_device(kaiming_normal(param.shape, fan_in, negative_slope, param.data.dtype),
                                device_of(param.data))
    return param


def zeros_(param):
    """Set ``param`` to zeros in place; returns it."""
    param.data[...] = 0
    return param
