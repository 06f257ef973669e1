"""Matrix products between tensors, ``a @ b``, with NumPy's (and PyTorch's) ``matmul`` rules.

a (..., n, k) @ b (..., k, m) -> (..., n, m), the leading (batch) dimensions broadcast. A 1-D a is
a row (1, k) and a 1-D b a column (k, 1), the added dimension dropped from the result.
"""
from ..function import Function
from ..backend import get_array_module
from .arithmetic import sum_to


class MatMul(Function):
    """y = a @ b;  da = gy @ b^T,  db = a^T @ gy (^T: the last two dimensions swapped), each summed
    over the batch dimensions its input was broadcast along."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        xp = get_array_module(gy)
        a = self.a[None] if self.a.ndim == 1 else self.a  # (1, k)
        b = self.b[:, None] if self.b.ndim == 1 else self.b  # (k, 1)
        shape = list(gy.shape)  # put back the dimensions a 1-D operand dropped
        if self.b.ndim == 1:
            shape.append(1)
        if self.a.ndim == 1:
            shape.insert(len(shape) - 1, 1)
        gy = gy.reshape(shape)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(gy @ xp.swapaxes(b, -1, -2), a.shape).reshape(self.a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(xp.swapaxes(a, -1, -2) @ gy, b.shape).reshape(self.b.shape)
        return ga, gb


def matmul(a, b):
    """The matrix product a @ b (2-D, batched, or with a 1-D operand), as ``torch.matmul``."""
    for name, t in (("first", a), ("second", b)):
        if len(t.shape) == 0:
            raise ValueError(f"matmul: the {name} operand is 0-d; both operands need at least one dimension")
    return MatMul()(a, b)
