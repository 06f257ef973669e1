"""The fully connected layer."""
from ..function import Function
from .validation import check_float, check_rank


class LinearFunction(Function):
    """y = x w^T + b with x (N, in), w (out, in), b (out,) -> y (N, out).

    Backward:  dx = gy w,  dw = gy^T x,  db = sum_n gy (each only where it is needed).
    """

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        y = x @ w.T
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        needs = self.needs_input_grad
        return (gy @ self.w if needs[0] else None, gy.T @ self.x if needs[1] else None,
                gy.sum(axis=0) if needs[-1] and len(needs) == 3 else None)


def linear(x, w, b=None):
    """Fully connected layer; w in PyTorch's (out_features, in_features) layout."""
    check_rank("linear", "input", x, 2, "(N, in_features)")
    check_rank("linear", "weight", w, 2, "(out_features, in_features)")
    check_float("linear", x, w, b)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"linear: input has {x.shape[1]} features (shape {tuple(x.shape)}) but "
                         f"weight expects {w.shape[1]} (weight shape {tuple(w.shape)})")
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"linear: bias shape {tuple(b.shape)}, expected ({w.shape[0]},)")
    return LinearFunction()(x, w) if b is None else LinearFunction()(x, w, b)
