"""Write ``tests/fixtures/tensor_reference.npz``: PyTorch's results for the tensor methods of ``nn``.

Run it where torch is installed::

    python tests/reference/make_tensor_fixtures.py        # writes tests/fixtures/tensor_reference.npz

``tests/test_tensor_habits.py`` then checks ``nn.Tensor``'s methods against the stored numbers
without torch; it holds the same case names, each with our call of the same method.

Layout: flat keys ``<case>.<name>``, every case listed in ``cases``. A case has its inputs ``x``
(and ``x2`` for two-input ops), torch's output ``y`` (``indices`` too for max/min along a dim), and,
for differentiable cases, the upstream gradient ``gy`` and the input gradients ``gx`` (``gx2``).
"""
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(HERE, "fixtures", "tensor_reference.npz")

rng = np.random.default_rng(20160517)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)


def distinct(*shape):
    """No ties, so that max, min and their positions are unambiguous."""
    n = int(np.prod(shape))
    return ((rng.permutation(n).reshape(shape) - n / 2) / n).astype(np.float32)


IDX = np.array([2, 0, 2])  # a repeated index: its gradients add up
ROWS, COLS = np.array([[0, 1], [1, 0]]), np.array([[3, 3], [0, 2]])

# name: (torch call, inputs, differentiable)
CASES = {
    "view": (lambda x: x.view(4, -1), [randn(2, 3, 4)], True),
    "view_tuple": (lambda x: x.view((6, 4)), [randn(2, 3, 4)], True),
    "reshape_flat": (lambda x: x.reshape(-1), [randn(2, 3, 4)], True),
    "flatten": (lambda x: x.flatten(), [randn(4, 10)], True),
    "flatten_start1": (lambda x: x.flatten(1), [randn(2, 3, 4)], True),
    "flatten_1_2": (lambda x: x.flatten(1, 2), [randn(2, 3, 4, 5)], True),
    "T": (lambda x: x.T, [randn(3, 4)], True),
    "mT": (lambda x: x.mT, [randn(2, 3, 4)], True),
    "transpose": (lambda x: x.transpose(0, 2), [randn(2, 3, 4)], True),
    "permute": (lambda x: x.permute(2, 0, 1), [randn(2, 3, 4)], True),
    "squeeze": (lambda x: x.squeeze(), [randn(2, 1, 3, 1)], True),
    "squeeze_dim": (lambda x: x.squeeze(1), [randn(2, 1, 3, 1)], True),
    "unsqueeze": (lambda x: x.unsqueeze(-1), [randn(2, 3)], True),
    "exp": (lambda x: x.exp(), [randn(3, 4)], True),
    "log": (lambda x: x.log(), [positive(3, 4)], True),
    "tanh": (lambda x: x.tanh(), [randn(3, 4)], True),
    "sigmoid": (lambda x: x.sigmoid(), [randn(3, 4) * 4], True),
    "sqrt": (lambda x: x.sqrt(), [positive(3, 4)], True),
    "abs": (lambda x: x.abs(), [randn(3, 4)], True),
    "pow": (lambda x: x.pow(2.5), [positive(3, 4)], True),
    "pow_operator": (lambda x: x ** 3, [randn(3, 4)], True),
    "pow_tensor": (lambda x, x2: x ** x2, [positive(3, 4), randn(4)], True),
    "rpow": (lambda x: 2.0 ** x, [randn(3, 4)], True),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), [randn(3, 4)], True),
    "clamp_min": (lambda x: x.clamp(min=0.0), [randn(3, 4)], True),
    "sum_dim": (lambda x: x.sum(dim=1), [randn(2, 3, 4)], True),
    "sum_dims_keepdim": (lambda x: x.sum(dim=(0, 2), keepdim=True), [randn(2, 3, 4)], True),
    "sum_all": (lambda x: x.sum(), [randn(2, 3, 4)], True),
    "mean_dim": (lambda x: x.mean(dim=-1), [randn(2, 3, 4)], True),
    "mean_dims": (lambda x: x.mean((0, 1)), [randn(2, 3, 4)], True),
    "max_all": (lambda x: x.max(), [distinct(3, 4)], True),
    "min_all": (lambda x: x.min(), [distinct(3, 4)], True),
    "max_dim": (lambda x: x.max(dim=1), [distinct(2, 5, 3)], True),
    "min_dim_keepdim": (lambda x: x.min(0, keepdim=True), [distinct(4, 3)], True),
    "argmax_dim": (lambda x: x.argmax(dim=1), [distinct(3, 5)], False),
    "argmax_all": (lambda x: x.argmax(), [distinct(3, 5)], False),
    "argmin_keepdim": (lambda x: x.argmin(dim=0, keepdim=True), [distinct(3, 5)], False),
    "matmul": (lambda x, x2: x @ x2, [randn(3, 4), randn(4, 5)], True),
    "matmul_batched": (lambda x, x2: x.matmul(x2), [randn(2, 3, 4), randn(2, 4, 5)], True),
    "matmul_broadcast": (lambda x, x2: x @ x2, [randn(3, 4), randn(2, 4, 5)], True),
    "matmul_vector": (lambda x, x2: x @ x2, [randn(3, 4), randn(4)], True),
    "index_slices": (lambda x: x[1:, ::2], [randn(3, 4, 5)], True),
    "index_int_none": (lambda x: x[0, None, ..., -1], [randn(3, 4, 5)], True),
    "index_array": (lambda x: x[torch.tensor(IDX)], [randn(3, 4)], True),
    "index_arrays_2d": (lambda x: x[torch.tensor(ROWS), :, torch.tensor(COLS)], [randn(2, 3, 4)], True),
    "index_mask": (lambda x: x[x > 0], [randn(3, 4)], True),
    "double": (lambda x: x.double() * 3, [randn(3, 4)], True),
    "float": (lambda x: x.double().float(), [randn(3, 4)], True),
}


def main():
    arrays, names = {}, []
    for name, (call, inputs, differentiable) in CASES.items():
        names.append(name)
        tensors = [torch.tensor(x, requires_grad=differentiable) for x in inputs]
        y = call(*tensors)
        if isinstance(y, tuple):  # torch.return_types.max / min
            arrays[f"{name}.indices"] = y.indices.numpy()
            y = y.values
        for i, x in enumerate(inputs):
            arrays[f"{name}.x{i + 1 if i else ''}"] = x
        arrays[f"{name}.y"] = y.detach().numpy()
        if differentiable:
            gy = rng.standard_normal(y.shape).astype(y.detach().numpy().dtype)
            y.backward(torch.tensor(gy))
            arrays[f"{name}.gy"] = gy
            for i, t in enumerate(tensors):
                arrays[f"{name}.gx{i + 1 if i else ''}"] = t.grad.numpy()
    arrays["cases"] = np.array(names)
    arrays["torch_version"] = np.array(torch.__version__)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {len(names)} cases to {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
