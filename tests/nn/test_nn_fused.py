"""The fused GPU kernels (nn/fused.py) against their portable twins, and what a training step
costs on the device: kernel launches and host synchronisations, counted on the strict stand-in."""
import numpy as np
import pytest

import nn
import nn.functional as F
from models.networks import decoders
from nn import fused
from tests.conftest import CUPY, REAL_GPU, to_numpy

RNG = np.random.default_rng(0)


def arrays(xp, *shapes):
    return [xp.asarray(RNG.standard_normal(s).astype(np.float32)) for s in shapes]


def test_adam_update_equals_its_twin(xp):
    f32 = np.float32
    p, g, m, v = arrays(xp, (5, 7), (5, 7), (5, 7), (5, 7))
    v = xp.abs(v)
    twin = [a.copy() for a in (p, g, m, v)]
    constants = (f32(0.9), f32(0.1), f32(0.999), f32(0.001), f32(0.003), f32(0.02), f32(1e-8))
    fused.adam_update(p, g, m, v, *constants)
    fused.adam_update.build(xp)(*twin, *constants)
    for a, b in zip((p, m, v), (twin[0], twin[2], twin[3])):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_ema_update_equals_its_twin(xp):
    average, param = arrays(xp, (6, 5), (6, 5))
    twin = average.copy()
    fused.ema_update(average, param, np.float32(0.999), np.float32(1 - 0.999))
    fused.ema_update.build(xp)(twin, param, np.float32(0.999), np.float32(1 - 0.999))
    np.testing.assert_array_equal(to_numpy(average), to_numpy(twin))


@pytest.mark.parametrize("slope", [0.2, 0.0, 1.0, -0.5, 1.5])
def test_leaky_relu_equals_its_definition_with_its_kernels_twins(xp, slope):
    """Every slope through F.leaky_relu (the max forms for 0 <= slope <= 1, the where forms
    otherwise), with signed zeros and infinities among the values, against the definition."""
    x, gy = arrays(xp, (4, 9), (4, 9))
    x[0, :4] = xp.asarray(np.array([0.0, -0.0, np.inf, -np.inf], dtype=np.float32))
    host_x, host_gy = to_numpy(x), to_numpy(gy)
    s = np.float32(slope)
    xt = nn.Tensor(x, requires_grad=True)
    y = F.leaky_relu(xt, slope)
    y.backward(gy)
    with np.errstate(invalid="ignore"):
        expected_y = np.where(host_x > 0, host_x, host_x * s)
        expected_y[0, 3] = -np.inf if slope > 0 else (np.inf if slope < 0 else 0.0)  # 0 (-inf): PyTorch's ReLU gives 0
    np.testing.assert_array_equal(to_numpy(y.data), expected_y)
    np.testing.assert_array_equal(to_numpy(xt.grad), np.where(host_x > 0, host_gy, host_gy * s))
    if 0 < slope <= 1:
        kernels = [(fused.leaky_relu_forward, (x, s)), (fused.leaky_relu_backward, (y.data, gy, s))]
    elif slope == 0:
        kernels = [(fused.relu_forward, (x,)), (fused.leaky_relu_backward, (y.data, gy, s))]
    else:
        kernels = [(fused.leaky_relu_forward_any_slope, (x, s)), (fused.leaky_relu_backward_any_slope, (x, gy, s))]
    for kernel, args in kernels:
        np.testing.assert_array_equal(to_numpy(kernel(*args)), to_numpy(kernel.build(xp)(*args)))


def test_in_place_kernels_run_by_pieces_with_the_same_result(monkeypatch):
    """adam_update on the CPU runs over pieces of fused.PIECE elements: with pieces that cut the
    arrays unevenly the result is bit for bit that of one pass (and of a strided array, which is
    not cut)."""
    f32 = np.float32
    constants = (f32(0.9), f32(0.1), f32(0.999), f32(0.001), f32(0.003), f32(0.02), f32(1e-8))
    p, g, m, v = arrays(np, (37, 11), (37, 11), (37, 11), (37, 11))
    v = np.abs(v)
    whole = [a.copy() for a in (p, g, m, v)]
    fused.adam_update.build(np)(*whole, *constants)
    calls = []
    portable = fused.adam_update.portable
    monkeypatch.setattr(fused.adam_update, "portable", lambda *a: calls.append(a[0].size) or portable(*a))
    monkeypatch.setattr(fused, "PIECE", 100)
    fused.adam_update(p, g, m, v, *constants)
    assert calls == [100, 100, 100, 100, 7]
    for a, b in zip((p, m, v), (whole[0], whole[2], whole[3])):
        np.testing.assert_array_equal(a, b)
    calls.clear()
    strided = [np.asfortranarray(a) for a in (p, g, m, v)]
    fused.adam_update(*strided, *constants)
    assert calls == [37 * 11]


def test_loss_kernels_equal_their_twins(xp):
    d, = arrays(xp, (3, 4, 5))
    np.testing.assert_allclose(to_numpy(fused.sum_of_squares(d)), to_numpy(fused.sum_of_squares.build(xp)(d)),
                               rtol=1e-6)
    gy = xp.asarray(np.float32(1.5))
    np.testing.assert_array_equal(to_numpy(fused.scaled(d, gy, np.float32(0.5))), to_numpy(d * (gy * 0.5)))
    a = d.copy()
    fused.scale_in_place(a, xp.asarray(np.float32(0.25)))
    np.testing.assert_array_equal(to_numpy(a), to_numpy(d) * np.float32(0.25))


@pytest.mark.skipif(REAL_GPU, reason="launches are counted by the stand-in")
def test_each_fused_kernel_is_one_launch():
    p, g, m, v = arrays(CUPY, (5, 7), (5, 7), (5, 7), (5, 7))
    v = CUPY.abs(v)
    CUPY.reset_counts()
    fused.adam_update(p, g, m, v, *[np.float32(c) for c in (0.9, 0.1, 0.999, 0.001, 0.003, 0.02, 1e-8)])
    fused.leaky_relu_forward(p, np.float32(0.2))
    fused.leaky_relu_backward(p, g, np.float32(0.2))
    fused.relu_forward(p)
    fused.sum_of_squares(p)
    assert CUPY.counts() == {"launches": 5, "syncs": 0, "host_to_device": 0}


def hog_step_launches(clip):
    """Kernel launches of one training step of the full-width HOG decoder (paper preset shapes)."""
    nn.random.seed(0)
    model = decoders.build("hog", 1.0, 64, in_channels=31).to("gpu")
    optimizer = nn.optim.Adam(model.parameters(), lr=1e-3)
    x = nn.to_device(RNG.random((2, 31, 8, 8), dtype=np.float32), "gpu")
    target = nn.to_device(RNG.random((2, 3, 64, 64), dtype=np.float32) - 0.5, "gpu")
    counts = []
    for _ in range(2):  # the first step also allocates Adam's moments
        CUPY.reset_counts()
        loss = F.mse_loss(model(nn.Tensor(x)), nn.Tensor(target), reduction="paper")
        optimizer.zero_grad()
        loss.backward()
        if clip:
            nn.optim.clip_grad_norm_(model.parameters(), 5000.0)
        optimizer.step()
        counts.append(CUPY.counts())
    return counts[-1]


@pytest.mark.skipif(REAL_GPU, reason="launches are counted by the stand-in")
def test_a_hog_step_launches_at_most_300_kernels_and_never_waits():
    plain, clipped = hog_step_launches(clip=False), hog_step_launches(clip=True)
    assert plain["launches"] <= 300 and plain["syncs"] == 0 and plain["host_to_device"] == 0, plain
    assert clipped["launches"] <= plain["launches"] + 2 * 26 + 8 and clipped["syncs"] == 0, clipped


@pytest.mark.skipif(REAL_GPU, reason="synchronisations are counted by the stand-in")
def test_max_pooling_never_waits_for_the_device():
    x = nn.Tensor(arrays(CUPY, (2, 3, 9, 9))[0], requires_grad=True)
    CUPY.reset_counts()
    F.max_pool2d(x, 3, 2, ceil_mode=True).sum().backward()
    assert CUPY.counts()["syncs"] == 0


def test_lrn_kernels_equal_their_twins(xp):
    x, s, gy, spread = arrays(xp, (2, 5, 3, 3), (2, 5, 3, 3), (2, 5, 3, 3), (2, 5, 3, 3))
    scale = fused.lrn_scale(xp.abs(s), np.float32(1.0), np.float32(2e-5))
    twin_scale = fused.lrn_scale.build(xp)(xp.abs(s), np.float32(1.0), np.float32(2e-5))
    np.testing.assert_array_equal(to_numpy(scale), to_numpy(twin_scale))
    for kernel, args in ((fused.lrn_output, (x, scale, np.float32(-0.75))),
                         (fused.lrn_spread_source, (gy, x, scale)),
                         (fused.lrn_input_grad, (gy, scale, np.float32(-0.75), np.float32(3e-5), x, spread))):
        np.testing.assert_allclose(to_numpy(kernel(*args)), to_numpy(kernel.build(xp)(*args)), rtol=1e-6)
