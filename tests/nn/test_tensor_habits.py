"""``nn.Tensor`` used with PyTorch habits: its methods against PyTorch's results (stored by
``tests/reference/make_tensor_fixtures.py``), float64 gradient checks of the same calls, and the behaviour
around them (shapes, errors, hooks, empty means), on both devices.
"""
import os
import warnings

import numpy as np
import pytest

import nn
import nn.functional as F

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "tensor_reference.npz")
RTOL = 1e-5

with np.load(FIXTURE, allow_pickle=False) as _f:
    DATA = {k: _f[k] for k in _f.files}

IDX = np.array([2, 0, 2])  # the index arrays of tests/reference/make_tensor_fixtures.py
ROWS, COLS = np.array([[0, 1], [1, 0]]), np.array([[3, 3], [0, 2]])


def _values(result):
    return result.values if isinstance(result, tuple) else result


# name: our call of the method that the fixture's case of the same name called on torch tensors
CALLS = {
    "view": lambda x: x.view(4, -1),
    "view_tuple": lambda x: x.view((6, 4)),
    "reshape_flat": lambda x: x.reshape(-1),
    "flatten": lambda x: x.flatten(),
    "flatten_start1": lambda x: x.flatten(1),
    "flatten_1_2": lambda x: x.flatten(1, 2),
    "T": lambda x: x.T,
    "mT": lambda x: x.mT,
    "transpose": lambda x: x.transpose(0, 2),
    "permute": lambda x: x.permute(2, 0, 1),
    "squeeze": lambda x: x.squeeze(),
    "squeeze_dim": lambda x: x.squeeze(1),
    "unsqueeze": lambda x: x.unsqueeze(-1),
    "exp": lambda x: x.exp(),
    "log": lambda x: x.log(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "sqrt": lambda x: x.sqrt(),
    "abs": lambda x: x.abs(),
    "pow": lambda x: x.pow(2.5),
    "pow_operator": lambda x: x ** 3,
    "pow_tensor": lambda x, x2: x ** x2,
    "rpow": lambda x: 2.0 ** x,
    "clamp": lambda x: x.clamp(-0.5, 0.5),
    "clamp_min": lambda x: x.clamp(min=0.0),
    "sum_dim": lambda x: x.sum(dim=1),
    "sum_dims_keepdim": lambda x: x.sum(dim=(0, 2), keepdim=True),
    "sum_all": lambda x: x.sum(),
    "mean_dim": lambda x: x.mean(dim=-1),
    "mean_dims": lambda x: x.mean((0, 1)),
    "max_all": lambda x: x.max(),
    "min_all": lambda x: x.min(),
    "max_dim": lambda x: x.max(dim=1),
    "min_dim_keepdim": lambda x: x.min(0, keepdim=True),
    "argmax_dim": lambda x: x.argmax(dim=1),
    "argmax_all": lambda x: x.argmax(),
    "argmin_keepdim": lambda x: x.argmin(dim=0, keepdim=True),
    "matmul": lambda x, x2: x @ x2,
    "matmul_batched": lambda x, x2: x.matmul(x2),
    "matmul_broadcast": lambda x, x2: x @ x2,
    "matmul_vector": lambda x, x2: x @ x2,
    "index_slices": lambda x: x[1:, ::2],
    "index_int_none": lambda x: x[0, None, ..., -1],
    "index_array": lambda x: x[nn.Tensor(IDX)],
    "index_arrays_2d": lambda x: x[ROWS.tolist(), :, nn.Tensor(COLS)],
    "index_mask": lambda x: x[x > 0],
    "double": lambda x: x.double() * 3,
    "float": lambda x: x.double().float(),
}
DIFFERENTIABLE = [c for c in CALLS if f"{c}.gy" in DATA]


def rel_err(ours, ref):
    ours, ref = nn.to_numpy(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    assert ours.dtype == ref.dtype, (ours.dtype, ref.dtype)
    if ref.dtype.kind in "iub":
        return float((ours != ref).sum())
    return float(np.abs(ours.astype(np.float64) - ref).max(initial=0) / max(np.abs(ref).max(initial=0), 1e-30))


def inputs(case):
    return [DATA[f"{case}.{name}"] for name in ("x", "x2") if f"{case}.{name}" in DATA]


def test_every_case_of_the_fixture_has_a_call():
    assert set(str(c) for c in DATA["cases"]) == set(CALLS)
    assert os.path.getsize(FIXTURE) < 200_000


@pytest.mark.parametrize("case", list(CALLS))
def test_against_pytorch(xp, case):
    differentiable = case in DIFFERENTIABLE
    xs = [nn.Tensor(xp.asarray(x), requires_grad=differentiable) for x in inputs(case)]
    result = CALLS[case](*xs)
    if f"{case}.indices" in DATA:
        values, indices = result  # unpacks as torch.return_types.max
        assert result.indices is indices and not indices.requires_grad
        assert rel_err(indices, DATA[f"{case}.indices"]) == 0
    y = _values(result)
    assert rel_err(y, DATA[f"{case}.y"]) <= RTOL, case
    assert y.device == xs[0].device
    if differentiable:
        y.backward(xp.asarray(DATA[f"{case}.gy"]))
        for x, name in zip(xs, ("gx", "gx2")):
            assert rel_err(x.grad, DATA[f"{case}.{name}"]) <= RTOL, (case, name)


@pytest.mark.parametrize("case", DIFFERENTIABLE)
def test_gradcheck(xp, case):
    """float64 central differences along a random direction, and every entry (the shapes are tiny)."""
    xs = [xp.asarray(x.astype(np.float64)) for x in inputs(case)]
    call = CALLS[case]
    if case in ("double", "float"):  # a cast to float32 loses what float64 differences resolve
        call = lambda x: x.double() * 3  # noqa: E731
    fn = lambda *t: _values(call(*t))  # noqa: E731
    nn.gradcheck(fn, xs, rtol=1e-6)
    nn.gradcheck(fn, xs, rtol=1e-6, full_jacobian=True)


def test_functional_twins(xp):
    x = nn.Tensor(xp.asarray(DATA["sigmoid.x"]))
    for name in ("exp", "tanh", "sigmoid", "sqrt", "abs"):
        a = getattr(F, name)(x.abs() if name == "sqrt" else x)
        b = getattr(x.abs() if name == "sqrt" else x, name)()
        assert rel_err(a, nn.to_numpy(b)) == 0, name
    assert F.sum(x, 1).shape == (3,) and F.mean(x, dim=0, keepdim=True).shape == (1, 4)
    assert F.max(x, 1).values.shape == (3,) and F.argmin(x).shape == ()
    assert F.flatten(nn.Tensor(xp.zeros((4, 10)))).shape == (40,)
    assert F.flatten(nn.Tensor(xp.zeros((4, 2, 5))), 1).shape == (4, 10)
    assert F.permute(x, (1, 0)).shape == (4, 3) and F.transpose(x, 0, 1).shape == (4, 3)
    assert F.matmul(x, x.T).shape == (3, 3) and F.clamp(x, max=0.0).max().item() <= 0


def test_extremes_along_dim_name_their_result_as_pytorch(xp):
    x = nn.Tensor(xp.asarray(DATA["max_dim.x"]))
    result = x.max(1)
    assert type(result).__name__ == "max" and result._fields == ("values", "indices")
    assert type(x.min(dim=0)).__name__ == "min"
    assert x.max(1).indices.dtype == np.int64


def test_shape_errors_name_the_method(xp):
    x = nn.Tensor(xp.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="mT"):
        x.T
    with pytest.raises(ValueError, match="transpose: dim 3"):
        x.transpose(0, 3)
    with pytest.raises(ValueError, match="permute"):
        x.permute(0, 0, 1)
    with pytest.raises(ValueError, match="flatten"):
        x.flatten(2, 1)
    with pytest.raises(ValueError, match="clamp"):
        x.clamp()
    with pytest.raises(TypeError, match="integers or booleans"):
        x[nn.Tensor([0.0, 1.0])]


def test_mean_of_an_empty_tensor_is_nan_without_warnings(xp):
    x = nn.Tensor(xp.zeros((0, 3)), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.mean()
        assert np.isnan(y.item())
        assert x.mean(dim=1).shape == (0,)
        y.backward()
    assert x.grad.shape == (0, 3)


def test_repeated_advanced_indices_accumulate(xp):
    x = nn.Tensor(xp.arange(4.0), requires_grad=True)
    x[[1, 1, 3, 1]].sum().backward()
    np.testing.assert_array_equal(nn.to_numpy(x.grad), [0, 3, 0, 1])


def test_detach_item_numpy_requires_grad_(xp):
    x = nn.Tensor(xp.asarray([[1.5, -2.0]], dtype=np.float32))
    assert x.requires_grad_() is x and x.requires_grad
    y = (x * 2).sum()
    assert y.item() == -1.0 and isinstance(y.item(), float)
    assert isinstance(x.numpy(), np.ndarray) and x.numpy().dtype == np.float32
    d = (x * 2).detach()
    assert not d.requires_grad and d.creator is None
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2).requires_grad_(False)
    assert x.double().dtype == np.float64 and x.double().float().dtype == np.float32
    x.double().sum().backward()
    assert x.grad.dtype == np.float32


def test_register_hook(xp):
    x = nn.Tensor(xp.asarray([1.0, 2.0, 3.0]), requires_grad=True)
    seen = []
    h = x * 2
    handle_h = h.register_hook(lambda g: seen.append(("h", nn.to_numpy(g).copy())))
    handle_x = x.register_hook(lambda g: g * 10)  # a replacement
    (h * h + h).sum().backward()  # h used twice: its hook sees the sum, once
    assert len(seen) == 1 and seen[0][0] == "h"
    np.testing.assert_allclose(seen[0][1], 2 * nn.to_numpy(h.data) + 1)
    np.testing.assert_allclose(nn.to_numpy(x.grad), 10 * 2 * (2 * nn.to_numpy(h.data) + 1))
    handle_h.remove()
    handle_x.remove()
    x.grad = None
    (x * 2).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(nn.to_numpy(x.grad), [2.0, 2.0, 2.0])
    with pytest.raises(RuntimeError, match="requires_grad_"):
        nn.Tensor(xp.zeros(2)).register_hook(print)


def test_hook_on_the_root_and_the_order_of_hooks(xp):
    x = nn.Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    y = (x * 3).sum()
    order = []
    y.register_hook(lambda g: order.append("first") or g * 2)
    y.register_hook(lambda g: order.append("second"))
    y.backward()
    assert order == ["first", "second"]
    np.testing.assert_allclose(nn.to_numpy(x.grad), [6.0, 6.0])
