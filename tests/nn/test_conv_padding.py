"""conv2d's string paddings, 'same' and 'valid', as PyTorch computes them (stored values of
tests/reference/make_conv_padding_fixtures.py), gradient-checked, on both devices; the checks that refuse
bad paddings and empty convolutions."""
import os

import numpy as np
import pytest

import nn
import nn.functional as F
from tests.conftest import to_numpy

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "conv_padding_reference.npz")
with np.load(FIXTURES) as _stored:
    REFERENCE = {key: _stored[key] for key in _stored.files}
CASES = [str(c) for c in REFERENCE["cases"]]


def case(name):
    return {key.split(".", 1)[1]: value for key, value in REFERENCE.items() if key.startswith(name + ".")}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_string_padding_equals_pytorch(xp, name, reference):
    c = case(name)
    x, w, b = (nn.Tensor(xp.asarray(c[k]), requires_grad=True) for k in ("x", "w", "b"))
    with F.reference_convolutions(reference):
        y = F.conv2d(x, w, b, padding=str(c["padding"]), groups=int(c["groups"]))
    assert y.shape == c["y"].shape
    y.backward(xp.asarray(c["gy"]))
    for ours, theirs in zip((y.data, x.grad, w.grad, b.grad), ("y", "gx", "gw", "gb")):
        np.testing.assert_allclose(to_numpy(ours), c[theirs], rtol=1e-4, atol=1e-5, err_msg=theirs)


def test_same_keeps_the_size_and_puts_the_odd_padding_at_the_end():
    """A 2x2 kernel of ones on 'same': each output sums the pixel, its right and lower neighbours
    (zeros past the last row and column), as PyTorch pads."""
    x = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    y = F.conv2d(nn.Tensor(x), nn.Tensor(np.ones((1, 1, 2, 2), np.float32)), padding="same").data
    padded = np.pad(x[0, 0], ((0, 1), (0, 1)))
    expected = padded[:-1, :-1] + padded[1:, :-1] + padded[:-1, 1:] + padded[1:, 1:]
    np.testing.assert_array_equal(y[0, 0], expected)


@pytest.mark.parametrize("kernel", [(3, 3), (4, 2)])
def test_same_padding_gradcheck(xp, kernel):
    rng = np.random.default_rng(3)
    x, w, b = (xp.asarray(rng.standard_normal(s)) for s in ((2, 3, 5, 6), (4, 3) + kernel, (4,)))
    for sparse in (False, True):
        conv = F.sparse_input_conv2d if sparse else F.conv2d
        report = nn.gradcheck(lambda x, w, b: conv(F.relu(x), w, b, padding="same"), [x, w, b])
        assert report and max(report.values()) < 1e-5, report
    small = [xp.ascontiguousarray(x[:1, :, :3, :4]), xp.ascontiguousarray(w[:2])]
    report = nn.gradcheck(lambda x, w: F.conv2d(x, w, padding="same"), small, full_jacobian=True)
    assert max(report.values()) < 1e-5, report


def test_the_module_takes_string_paddings_and_sparse_input_conv2d_agrees(xp, device):
    rng = np.random.default_rng(4)
    x = nn.Tensor(xp.asarray(np.maximum(rng.standard_normal((2, 3, 7, 6)), 0).astype(np.float32)))
    for padding in ("same", "valid"):
        dense = nn.Conv2d(3, 5, (4, 3), padding=padding).to(device)
        sparse = nn.SparseInputConv2d(3, 5, (4, 3), padding=padding).to(device)
        sparse.load_state_dict(dense.state_dict())
        y = dense(x)
        assert y.shape == ((2, 5, 7, 6) if padding == "same" else (2, 5, 4, 4))
        np.testing.assert_allclose(to_numpy(sparse(x).data), to_numpy(y.data), rtol=1e-5, atol=1e-5)
        assert f"padding={padding}" in repr(dense)


@pytest.mark.parametrize("kwargs, message", [
    (dict(padding="full"), "Conv2d: padding 'full' is not one of 'same', 'valid'"),
    (dict(padding="Same"), "Conv2d: padding 'Same' is not one of 'same', 'valid'"),
    (dict(padding="same", stride=2), r"Conv2d: padding='same' needs stride 1 \(got stride \(2, 2\)\)"),
    (dict(padding="same", stride=(1, 2)), r"needs stride 1 \(got stride \(1, 2\)\)"),
])
def test_bad_string_paddings_are_refused_when_the_layer_is_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nn.Conv2d(3, 4, 3, **kwargs)


def test_bad_string_paddings_are_refused_by_the_functions():
    x, w = nn.Tensor(np.ones((1, 2, 5, 5), np.float32)), nn.Tensor(np.ones((3, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="conv2d: padding 'half' is not one of"):
        F.conv2d(x, w, padding="half")
    with pytest.raises(ValueError, match="conv2d: padding='same' needs stride 1"):
        F.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="sparse_input_conv2d: padding='same' needs stride 1"):
        F.sparse_input_conv2d(x, w, stride=2, padding="same")


@pytest.mark.parametrize("x_shape, w_shape", [((1, 0, 5, 5), (3, 0, 3, 3)), ((1, 2, 5, 5), (0, 2, 3, 3)),
                                              ((1, 2, 5, 5), (3, 2, 0, 3))])
def test_empty_convolutions_are_refused(xp, x_shape, w_shape):
    x, w = nn.Tensor(xp.zeros(x_shape, np.float32)), nn.Tensor(xp.zeros(w_shape, np.float32))
    with pytest.raises(ValueError, match="channels and kernel sizes must be at least 1"):
        F.conv2d(x, w)
    with pytest.raises(ValueError, match="channels and kernel sizes must be at least 1"):
        F.sparse_input_conv2d(x, w)
