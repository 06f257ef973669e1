"""The differentiable ops, one row each: a small call, the shapes of its inputs, and the PyTorch
reference it is compared with. One table drives ``cli.py gradcheck OP``
(:func:`models.analyses.inspect_model.check_gradients`), the gradient checks of every op
(tests/nn/test_nn_gradcheck.py) and the check that every op has a PyTorch reference
(tests/nn/test_nn_reference.py, from the numbers tests/reference/make_nn_fixtures.py stores). A new op gets a
row here (docs/ARCHITECTURE.md, "Adding an op").

``reference``: the op's case family in tests/fixtures/nn_reference.npz, or its case in
tests/fixtures/tensor_reference.npz (tests/make_tensor_fixtures.py), torch's result for the same op.
"""
from collections import namedtuple

from .activation import leaky_relu, relu
from .arithmetic import abs
from .conv import conv2d, conv_transpose2d
from .elementwise import clamp, exp, log, sigmoid, sqrt, tanh
from .indexing import get_item
from .linear import linear
from .loss import mse_loss
from .normalization import local_response_norm
from .matrix_product import matmul
from .pooling import max_pool2d
from .reduction import max, mean, sum
from .shape import concat, permute, reshape
from .sparse_conv import sparse_input_conv2d

OpExample = namedtuple("OpExample", "call shapes reference")

OPS = {
    "conv2d": OpExample(lambda x, w, b: conv2d(x, w, b, stride=2, padding=1),
                        [(2, 4, 7, 7), (6, 4, 3, 3), (6,)], "conv2d"),
    "conv2d_groups": OpExample(lambda x, w, b: conv2d(x, w, b, padding=1, groups=2),
                               [(2, 4, 5, 5), (6, 2, 3, 3), (6,)], "conv2d"),
    # relu: about one pixel in four is zero in both channels, so both kinds of pixel are checked
    "sparse_input_conv2d": OpExample(lambda x, w, b: sparse_input_conv2d(relu(x), w, b, stride=2, padding=2),
                                     [(2, 2, 7, 7), (3, 2, 5, 5), (3,)], "sparse_input_conv2d"),
    "conv_transpose2d": OpExample(lambda x, w, b: conv_transpose2d(x, w, b, stride=2, padding=2, output_padding=1),
                                  [(2, 3, 4, 4), (3, 5, 5, 5), (5,)], "conv_transpose2d"),
    "linear": OpExample(linear, [(3, 6), (4, 6), (4,)], "linear"),
    "max_pool2d": OpExample(lambda x: max_pool2d(x, 3, 2, 0, True), [(2, 3, 8, 8)], "max_pool2d"),
    "local_response_norm": OpExample(lambda x: local_response_norm(x, 5, 1e-2, 0.75, 1.0),
                                     [(2, 7, 4, 4)], "local_response_norm"),
    "leaky_relu": OpExample(lambda x: leaky_relu(x, 0.2), [(3, 5)], "leaky_relu"),
    "relu": OpExample(relu, [(3, 5)], "relu"),
    "mse_loss": OpExample(mse_loss, [(3, 5), (3, 5)], "mse_loss"),
    "concat": OpExample(lambda x, y: concat([x, y], axis=1), [(2, 3, 2), (2, 4, 2)], "concat_flatten"),
    "reshape": OpExample(lambda x: reshape(x, (2, 12)), [(2, 3, 4)], "concat_flatten"),
    "abs": OpExample(abs, [(3, 5)], "abs"),
    "pow": OpExample(lambda x: abs(x) ** 3.0, [(3, 5)], "pow"),
    "pow_tensor": OpExample(lambda x, y: abs(x) ** y, [(3, 4), (4,)], "pow_tensor"),
    "exp": OpExample(exp, [(3, 4)], "exp"),
    "log": OpExample(lambda x: log(abs(x)), [(3, 4)], "log"),
    "tanh": OpExample(tanh, [(3, 4)], "tanh"),
    "sigmoid": OpExample(sigmoid, [(3, 4)], "sigmoid"),
    "sqrt": OpExample(lambda x: sqrt(abs(x)), [(3, 4)], "sqrt"),
    "clamp": OpExample(lambda x: clamp(x, -0.45, 0.55), [(3, 4)], "clamp"),
    "sum": OpExample(lambda x: sum(x, (0, 2), keepdim=True), [(2, 3, 4)], "sum_dims_keepdim"),
    "mean": OpExample(lambda x: mean(x, -1), [(2, 3, 4)], "mean_dim"),
    "max": OpExample(lambda x: max(x, 1).values, [(2, 5, 3)], "max_dim"),
    "matmul": OpExample(matmul, [(2, 3, 4), (4, 5)], "matmul_broadcast"),
    "permute": OpExample(lambda x: permute(x, 2, 0, 1), [(2, 3, 4)], "permute"),
    "get_item": OpExample(lambda x: get_item(x, ([2, 0, 2], slice(1, None))), [(3, 4)], "index_array"),
}
