"""Differentiable ops on tensors, PyTorch-style names and NCHW layouts (``import nn.functional as F``)."""
from .activation import leaky_relu, relu
from .arithmetic import abs, add, div, mul, neg, pow, sub
from .conv import conv2d, conv_transpose2d, reference_convolutions
from .dropout import dropout
from .elementwise import cast, clamp, exp, log, sigmoid, sqrt, tanh
from .indexing import get_item
from .linear import linear
from .loss import l1_loss, mse_loss
from .matrix_product import matmul
from .normalization import batch_norm, local_response_norm
from .pooling import max_pool2d
from .reduction import argmax, argmin, max, mean, min, sum
from .shape import concat, flatten, permute, reshape, squeeze, transpose, unsqueeze
from .sparse_conv import sparse_input_conv2d
from . import operators

operators.install()

__all__ = ["abs", "add", "batch_norm", "concat", "conv2d", "conv_transpose2d", "div", "dropout", "flatten", "get_item",
           "l1_loss", "leaky_relu", "linear", "local_response_norm", "max_pool2d", "mean", "mse_loss", "mul", "neg",
           "pow", "reference_convolutions", "relu", "reshape", "sparse_input_conv2d", "sub", "sum",
           "argmax", "argmin", "cast", "clamp", "exp", "log", "matmul", "max", "min", "permute", "sigmoid",
           "sqrt", "squeeze", "tanh", "transpose", "unsqueeze"]
