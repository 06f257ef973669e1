"""Float64 gradient checks of every op in ``nn.functional`` and of modules, the conv/transposed-conv
adjoint identity, and the autodiff semantics of ``Tensor.backward`` (accumulation, topological
order, ``no_grad``, freeing the graph, hooks).

Each gradient check compares backward with central differences of L(x) = <f(x), gy> for a random
upstream gradient gy along a random direction (``nn.gradcheck``), and a few tiny cases compare every
entry of the gradient (``full_jacobian=True``). Piecewise-linear ops (ReLU, max-pooling) get inputs
that stay well away from their kinks and ties, so the finite differences never straddle one.
Every test runs on NumPy and, where a GPU is available, on CuPy (the ``xp`` fixture).
"""

import numpy as np
import pytest

import nn
import nn.functional as F
from nn.functional.op_table import OPS
from nn.function import Function

RTOL = 1e-6  # float64 central differences with eps=1e-6 are good to ~1e-9 on these sizes


def rand(xp, *shape, seed=0, low=None):
    """Standard normal float64 values; with ``low``, magnitudes in [low, low + 1) and random signs."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    if low is not None:
        a = np.sign(a) * (low + rng.random(shape))
    return xp.asarray(a)


def distinct(xp, *shape, seed=0, gap=0.01):
    """A random permutation of 0..n-1 scaled by ``gap`` and centred: no ties, neighbours ``gap`` apart."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return xp.asarray((rng.permutation(n).reshape(shape) - n / 2) * gap)


def check(fn, inputs, params=(), full=False, rtol=RTOL, seed=1):
    report = nn.gradcheck(fn, inputs, params=params, eps=1e-6, rtol=rtol, seed=seed, full_jacobian=full)
    assert report and all(np.isfinite(v) for v in report.values()), report
    return report


# --- convolutions (values against the definition, then gradients) ------------------------------
# (N, C_in, C_out, H, W, kernel, stride, padding, groups): every kernel {1,3,4,5,11}, stride {1,2,4},
# padding 0..5, groups {1,2}, square and non-square inputs and kernels, batch 1 to 4, with and
# without (H + 2p - k) % s == 0.
CONV_CONFIGS = [
    (1, 3, 4, 7, 9, 1, 1, 0, 1),
    (2, 4, 6, 8, 6, 1, 2, 0, 2),
    (2, 6, 4, 5, 4, 1, 1, 1, 2),
    (3, 2, 3, 6, 5, 3, 1, 1, 1),
    (2, 4, 4, 9, 7, 3, 2, 1, 2),
    (1, 3, 2, 10, 13, 3, 4, 0, 1),
    (4, 2, 3, 5, 6, 3, 1, 0, 1),
    (2, 2, 4, 8, 8, 4, 2, 1, 1),
    (1, 4, 2, 7, 10, 4, 2, 1, 2),
    (2, 3, 3, 9, 11, 4, 1, 2, 1),
    (1, 2, 2, 8, 12, 4, 4, 0, 1),
    (1, 2, 4, 12, 9, 5, 1, 2, 2),
    (3, 3, 2, 11, 8, 5, 2, 0, 1),
    (2, 4, 2, 13, 14, 5, 4, 2, 2),
    (1, 3, 4, 23, 27, 11, 4, 0, 1),
    (2, 2, 2, 15, 12, 11, 1, 5, 2),
    (2, 4, 4, 19, 17, 11, 2, 3, 1),
    (1, 2, 2, 6, 8, (3, 5), (1, 2), (1, 2), 1),
    (2, 4, 2, 9, 7, (4, 2), (2, 1), (0, 1), 2),
    (1, 1, 1, 5, 5, 5, 1, 0, 1),  # kernel covering the whole input: 1x1 output
]


@pytest.fixture(params=["whole", "row-bands+phases", "row-bands+col2im", "row-bands+col2im-batch-last", "gather"])
def bands(request):
    """Runs a conv test five ways: as each small shape and device chooses by itself (the device's
    default ConvPlan: im2col in one band, conv.py's size-based choices, gathering on the GPU),
    forced to one output row per band (what large layers get on the CPU) with each of those
    choices pinned: stride phases with the transposed weight-gradient GEMM, or col2im with the
    direct one, its batch axis first or last; and forced to gather by index (the GPU's way) on
    either device."""
    from nn.functional.conv_engine import ConvPlan, planned
    large = 1 << 62
    col2im = dict(band_bytes=1, min_band_columns=1, phase_min_positions_per_channel=large,
                  weight_grad_transpose_positions=large)
    plans = {"gather": ConvPlan(gather=True),
             "row-bands+phases": ConvPlan(band_bytes=1, min_band_columns=1, phase_min_positions_per_channel=0,
                                          weight_grad_transpose_positions=0),
             "row-bands+col2im": ConvPlan(**col2im, batch_last_max_width=0),
             "row-bands+col2im-batch-last": ConvPlan(**col2im, batch_last_max_width=large)}
    if request.param == "whole":
        yield request.param
        return
    with planned(plans[request.param]):
        yield request.param


def naive_conv2d(x, w, stride, padding, groups):
    """The definition, in float64 NumPy, a loop over kernel offsets:
    y[n, o, i, j] = sum_{c in group(o), u, v} w[o, c, u, v] x_pad[n, c, i sH + u, j sW + v]."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    x, w = nn.to_numpy(x), nn.to_numpy(w)
    n, c, h, wd = x.shape
    co, cg, kh, kw = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    y = np.zeros((n, groups, co // groups, oh, ow))
    xg, wg = x_pad.reshape(n, groups, cg, *x_pad.shape[2:]), w.reshape(groups, co // groups, cg, kh, kw)
    for u in range(kh):
        for v in range(kw):
            window = xg[:, :, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw]
            y += np.einsum("ngcij,goc->ngoij", window, wg[:, :, :, u, v])
    return y.reshape(n, co, oh, ow)


def naive_conv_transpose2d(x, w, stride, padding, output_padding, groups):
    """The definition: every input pixel scatters w[c, o] into a window of the output, stride apart."""
    (sh, sw), (ph, pw), (oph, opw) = pair(stride), pair(padding), pair(output_padding)
    x, w = nn.to_numpy(x), nn.to_numpy(w)
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    full = np.zeros((n, groups, og, (h - 1) * sh + kh + oph, (wd - 1) * sw + kw + opw))
    xg, wg = x.reshape(n, groups, c // groups, h, wd), w.reshape(groups, c // groups, og, kh, kw)
    for u in range(kh):
        for v in range(kw):
            full[:, :, :, u:u + sh * (h - 1) + 1:sh, v:v + sw * (wd - 1) + 1:sw] += \
                np.einsum("ngcij,gco->ngoij", xg, wg[:, :, :, u, v])
    full = full.reshape(n, groups * og, *full.shape[3:])
    return full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]


def conv_id(cfg):
    n, ci, co, h, w, k, s, p, g = cfg
    return f"n{n}-c{ci}to{co}-{h}x{w}-k{k}-s{s}-p{p}-g{g}".replace(" ", "")


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=conv_id)
def test_conv2d_gradients(xp, cfg, bands):
    n, ci, co, h, w, k, s, p, g = cfg
    kh, kw = pair(k)
    x = rand(xp, n, ci, h, w, seed=1)
    wt = rand(xp, co, ci // g, kh, kw, seed=2)
    b = rand(xp, co, seed=3)
    y = F.conv2d(nn.Tensor(x), nn.Tensor(wt), stride=s, padding=p, groups=g)
    np.testing.assert_allclose(nn.to_numpy(y.data), naive_conv2d(x, wt, s, p, g), rtol=1e-12, atol=1e-12)
    report = check(lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=p, groups=g), [x, wt, b])
    assert set(report) == {"input0", "input1", "input2"}
    check(lambda x, w: F.conv2d(x, w, stride=s, padding=p, groups=g), [x, wt], seed=5)


def transpose_output_padding(cfg):
    """The largest legal output_padding (stride - 1) on odd configurations, 0 on even ones."""
    index = CONV_CONFIGS.index(cfg)
    return tuple(st - 1 if index % 2 else 0 for st in pair(cfg[6]))


@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=conv_id)
def test_conv_transpose2d_gradients(xp, cfg, bands):
    n, ci, co, h, w, k, s, p, g = cfg
    kh, kw = pair(k)
    op = transpose_output_padding(cfg)
    x = rand(xp, n, ci, h, w, seed=1)
    wt = rand(xp, ci, co // g, kh, kw, seed=2)
    b = rand(xp, co, seed=3)

    def fn(x, w, b):
        return F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op, groups=g)

    y = fn(nn.Tensor(x), nn.Tensor(wt), nn.Tensor(b))
    expect = tuple((i - 1) * st - 2 * pp + kk + o for i, st, pp, kk, o in zip((h, w), pair(s), pair(p), (kh, kw), op))
    assert y.shape == (n, co) + expect
    np.testing.assert_allclose(nn.to_numpy(y.data) - nn.to_numpy(b).reshape(1, -1, 1, 1),
                               naive_conv_transpose2d(x, wt, s, p, op, g), rtol=1e-12, atol=1e-12)
    check(fn, [x, wt, b])
    check(lambda x, w: F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op, groups=g), [x, wt], seed=5)


@pytest.mark.parametrize("op,stride,padding,groups,output_padding", [
    ("conv2d", 1, 0, 1, 0), ("conv2d", 2, 1, 2, 0), ("conv2d", (2, 1), (0, 1), 1, 0),
    ("conv_transpose2d", 1, 0, 1, 0), ("conv_transpose2d", 2, 1, 2, 1), ("conv_transpose2d", 2, 0, 1, (1, 0)),
])
def test_conv_full_jacobian(xp, op, stride, padding, groups, output_padding, bands):
    x = rand(xp, 2, 2, 4, 3, seed=4)
    w = rand(xp, 2, 2 // groups, 3, 2, seed=5)
    b = rand(xp, 2, seed=6)
    if op == "conv2d":
        fn = lambda x, w, b: F.conv2d(x, w, b, stride, padding, groups)  # noqa: E731
    else:
        fn = lambda x, w, b: F.conv_transpose2d(x, w, b, stride, padding, output_padding, groups)  # noqa: E731
    check(fn, [x, w, b], full=True)


def _inner(a, b):
    return float((nn.to_numpy(a).astype(np.float64) * nn.to_numpy(b)).sum())


ADJOINT_CONFIGS = [  # (N, C, C_out, H, W, k, stride, padding, groups)
    (2, 3, 4, 8, 8, 3, 1, 1, 1),
    (1, 4, 6, 9, 7, 3, 2, 1, 2),      # (H + 2p - k) % s != 0 in W: needs output_padding
    (3, 2, 2, 10, 11, 4, 2, 1, 1),    # the decoders' upconv
    (1, 4, 4, 13, 12, 5, 4, 2, 4),    # depthwise, stride 4
    (2, 3, 2, 23, 27, 11, 4, 0, 1),   # AlexNet conv1-like, remainders in both axes
    (1, 6, 4, 7, 10, (3, 1), (1, 3), (0, 2), 2),
]


@pytest.mark.parametrize("cfg", ADJOINT_CONFIGS, ids=conv_id)
def test_conv_adjoint_identity(xp, cfg, bands):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>: the transposed convolution is the adjoint."""
    n, c, co, h, w, k, s, p, g = cfg
    kh, kw = pair(k)
    (sh, sw), (ph, pw) = pair(s), pair(p)
    x = rand(xp, n, c, h, w, seed=7)
    wt = rand(xp, co, c // g, kh, kw, seed=8)
    cx = F.conv2d(nn.Tensor(x), nn.Tensor(wt), stride=s, padding=p, groups=g)
    y = rand(xp, *cx.shape, seed=9)
    output_padding = ((h + 2 * ph - kh) % sh, (w + 2 * pw - kw) % sw)
    ty = F.conv_transpose2d(nn.Tensor(y), nn.Tensor(wt), stride=s, padding=p, output_padding=output_padding,
                            groups=g)
    assert ty.shape == x.shape
    lhs, rhs = _inner(cx.data, y), _inner(x, ty.data)
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), abs(rhs), 1.0), (lhs, rhs)


def test_conv_transpose_is_conv_backward_data(xp, bands):
    """conv_transpose2d(gy, w) equals the input gradient of conv2d for upstream gradient gy."""
    x = nn.Tensor(rand(xp, 2, 4, 9, 8, seed=1), requires_grad=True)
    w = rand(xp, 6, 2, 4, 4, seed=2)
    y = F.conv2d(x, nn.Tensor(w), stride=2, padding=1, groups=2)
    gy = rand(xp, *y.shape, seed=3)
    y.backward(gy)
    t = F.conv_transpose2d(nn.Tensor(gy), nn.Tensor(w), stride=2, padding=1, output_padding=(1, 0), groups=2)
    np.testing.assert_allclose(nn.to_numpy(t.data), nn.to_numpy(x.grad), rtol=1e-12, atol=1e-12)


# --- the convolution of a sparse input ------------------------------------------------------------
SPARSE_CONFIGS = [cfg for cfg in CONV_CONFIGS if cfg[8] == 1]


def sparse_map(xp, n, c, h, w, density, seed):
    """Values in [0.5, 1.5) with random signs, every channel of a pixel zero except where a pixel
    is filled (probability ``density``): the shape of SIFT's keypoint map."""
    rng = np.random.default_rng(seed)
    filled = rng.random((n, 1, h, w)) < density
    return xp.asarray(np.sign(rng.standard_normal((n, c, h, w))) * (0.5 + rng.random((n, c, h, w))) * filled)


@pytest.fixture(params=["by-pixels", "dense"])
def sparse_plan(request):
    """Both ways ConvPlan.sparse_inputs can compute sparse_input_conv2d, on every device."""
    from nn.functional.conv_engine import ConvPlan, planned
    with planned(ConvPlan(sparse_inputs=request.param == "by-pixels")):
        yield request.param


@pytest.mark.parametrize("density", [0.0, 0.15, 1.0])
@pytest.mark.parametrize("cfg", SPARSE_CONFIGS, ids=conv_id)
def test_sparse_input_conv2d_is_conv2d(xp, cfg, density, sparse_plan):
    """Its value is the definition's, and its gradients (weight, bias, and the input's, which is not
    sparse) pass the float64 check, for empty, sparse and full maps."""
    n, ci, co, h, w, k, s, p, _ = cfg
    kh, kw = pair(k)
    x = sparse_map(xp, n, ci, h, w, density, seed=1)
    wt, b = rand(xp, co, ci, kh, kw, seed=2), rand(xp, co, seed=3)
    y = F.sparse_input_conv2d(nn.Tensor(x), nn.Tensor(wt), nn.Tensor(b), stride=s, padding=p)
    expect = naive_conv2d(x, wt, s, p, 1) + nn.to_numpy(b).reshape(1, -1, 1, 1)
    np.testing.assert_allclose(nn.to_numpy(y.data), expect, rtol=1e-12, atol=1e-12)
    # the finite differences stay on the pixels' side of zero: a filled pixel's values are >= 0.5
    check(lambda w, b: F.sparse_input_conv2d(nn.Tensor(x), w, b, stride=s, padding=p), [wt, b])
    check(lambda x, w: F.sparse_input_conv2d(x, w, stride=s, padding=p), [x, wt], seed=5)


def test_sparse_input_conv2d_by_pixels_on_the_cpu_and_dense_on_the_gpu(xp):
    """The device's default plan decides (ConvPlan.sparse_inputs): on the GPU, finding the filled
    pixels would make the device wait for the host at every tap; --reference computes the plain
    definition on both."""
    from nn.functional.conv import Conv2dFunction
    from nn.functional.conv_reference import Conv2dReference
    from nn.functional.sparse_conv import SparseInputConv2dFunction
    x = nn.Tensor(sparse_map(xp, 2, 3, 8, 8, 0.1, seed=1))
    w = nn.Tensor(rand(xp, 4, 3, 3, 3, seed=2), requires_grad=True)
    expected = SparseInputConv2dFunction if xp is np else Conv2dFunction
    assert type(F.sparse_input_conv2d(x, w, stride=2, padding=1).creator) is expected
    with F.reference_convolutions():
        assert type(F.sparse_input_conv2d(x, w, stride=2, padding=1).creator) is Conv2dReference


def test_sparse_input_conv2d_refuses_what_conv2d_refuses(xp):
    """The same size and argument checks as conv2d (check_conv2d_size, check_conv), named for the op."""
    x, w = nn.Tensor(sparse_map(xp, 1, 2, 3, 3, 0.5, seed=1)), nn.Tensor(rand(xp, 2, 2, 5, 5, seed=2))
    with pytest.raises(ValueError, match=r"sparse_input_conv2d: kernel \(5, 5\) larger than the padded input \(3, 3\)"):
        F.sparse_input_conv2d(x, w)
    with pytest.raises(ValueError, match="sparse_input_conv2d: .*stride"):
        F.sparse_input_conv2d(x, w, padding=2, stride=0)
    with pytest.raises(ValueError, match="sparse_input_conv2d: input shape"):
        F.sparse_input_conv2d(x, nn.Tensor(rand(xp, 2, 3, 1, 1, seed=2)))


def test_sparse_input_conv2d_works_on_filled_pixels_only():
    """The taps pair each filled pixel with the outputs it reaches and nothing else: 2 pixels of a
    3x3 kernel at stride 1 away from the border reach 9 outputs each."""
    from nn.functional.sparse_conv import SparseInputConv2dFunction
    x = np.zeros((1, 2, 8, 8))
    x[0, :, 2, 3], x[0, 1, 5, 5] = 1.0, -2.0
    fn = SparseInputConv2dFunction((1, 1), (1, 1))
    y = fn(nn.Tensor(x), nn.Tensor(rand(np, 3, 2, 3, 3, seed=1), requires_grad=True))
    assert sum(len(pick) for _, _, pick, _ in fn.pairs) == 18 and fn.values.shape == (2, 2)
    assert (nn.to_numpy(y.data)[:, :, 0] == 0).all()  # rows no filled pixel reaches stay exactly zero


# --- the other ops -----------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_linear(xp, bias):
    x, w, b = rand(xp, 5, 7, seed=1), rand(xp, 3, 7, seed=2), rand(xp, 3, seed=3)
    if bias:
        check(F.linear, [x, w, b])
    else:
        check(F.linear, [x, w])
    check(F.linear, [rand(xp, 2, 3, seed=4), rand(xp, 2, 3, seed=5), rand(xp, 2, seed=6)], full=True)


@pytest.mark.parametrize("slope", [0.0, 0.2, 1.5])
def test_leaky_relu(xp, slope):
    x = rand(xp, 2, 3, 4, 5, seed=1, low=0.05)  # |x| >= 0.05: no kink within eps
    fn = F.relu if slope == 0.0 else (lambda x: F.leaky_relu(x, slope))
    check(fn, [x])
    check(fn, [rand(xp, 2, 3, seed=2, low=0.05)], full=True)


def test_relu_values(xp):
    x = nn.Tensor(xp.asarray([[-2.0, -0.5, 0.0, 0.5, 3.0]]), requires_grad=True)
    y = F.leaky_relu(x, 0.2)
    np.testing.assert_allclose(nn.to_numpy(y.data), [[-0.4, -0.1, 0.0, 0.5, 3.0]])
    y.backward(xp.ones_like(y.data))
    np.testing.assert_allclose(nn.to_numpy(x.grad), [[0.2, 0.2, 0.2, 1.0, 1.0]])  # x = 0 takes the slope


POOL_CONFIGS = [  # (shape, kernel, stride, padding, ceil_mode)
    ((2, 3, 8, 8), 2, 2, 0, False),
    ((2, 2, 9, 11), 3, 2, 0, False),
    ((2, 2, 9, 11), 3, 2, 0, True),     # CaffeNet's pool: ceil mode adds a partial window
    ((1, 3, 13, 13), 3, 2, 0, True),    # AlexNet pool5 size: ceil equals floor here
    ((2, 2, 7, 10), 3, 2, 1, False),
    ((2, 2, 7, 10), 3, 2, 1, True),
    ((1, 2, 10, 7), (2, 3), (3, 2), (1, 1), True),
    ((1, 2, 6, 6), 4, 1, 2, False),
    ((3, 1, 5, 8), 5, 4, 2, True),
]


@pytest.mark.parametrize("shape,kernel,stride,padding,ceil_mode", POOL_CONFIGS)
def test_max_pool2d(xp, shape, kernel, stride, padding, ceil_mode):
    x = distinct(xp, *shape, seed=3)
    fn = lambda x: F.max_pool2d(x, kernel, stride, padding, ceil_mode)  # noqa: E731
    check(fn, [x])
    if np.prod(shape) <= 150:
        check(fn, [x], full=True)


def test_max_pool2d_full_jacobian_small(xp):
    x = distinct(xp, 1, 2, 5, 5, seed=4)
    check(lambda x: F.max_pool2d(x, 2, 2, 0, True), [x], full=True)
    check(lambda x: F.max_pool2d(x, 3, 2, 1, False), [x], full=True)


@pytest.mark.parametrize("size", [3, 5, 4, 1])
@pytest.mark.parametrize("alpha,beta,k", [(1e-4, 0.75, 1.0), (0.8, 0.75, 2.0)])
def test_local_response_norm(xp, size, alpha, beta, k):
    x = rand(xp, 2, 7, 4, 3, seed=size)
    check(lambda x: F.local_response_norm(x, size, alpha, beta, k), [x])
    check(lambda x: F.local_response_norm(x, size, alpha, beta, k), [rand(xp, 1, 6, 2, 1, seed=9)], full=True)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout(xp, p):
    """With the library's random stream reseeded before every call, the mask is fixed."""

    def fn(x):
        nn.random.seed(123)
        return F.dropout(x, p, training=True)

    x = rand(xp, 4, 3, 5, 5, seed=1)
    check(fn, [x])
    check(fn, [rand(xp, 2, 6, seed=2)], full=True)
    y = nn.to_numpy(fn(nn.Tensor(x)).data)
    kept = y != 0
    np.testing.assert_allclose(y[kept], nn.to_numpy(x)[kept] / (1 - p), rtol=1e-12)
    assert 0 < kept.mean() < 1
    assert F.dropout(nn.Tensor(x), p, training=False).data is x


@pytest.mark.parametrize("axis", [0, 1, 3, -1])
def test_concat(xp, axis):
    shapes = [[2, 3, 4, 5] for _ in range(3)]
    for i, extra in enumerate([1, 2, 3]):
        shapes[i][axis] = extra
    xs = [rand(xp, *s, seed=i) for i, s in enumerate(shapes)]
    report = check(lambda *t: F.concat(list(t), axis=axis), xs)
    assert set(report) == {"input0", "input1", "input2"}


def test_concat_full_jacobian(xp):
    check(lambda a, b: F.concat([a, b], axis=1), [rand(xp, 1, 2, 2, seed=1), rand(xp, 1, 1, 2, seed=2)], full=True)


@pytest.mark.parametrize("op", [
    lambda x: F.reshape(x, (4, -1)),
    lambda x: F.reshape(x, (3, 2, 10, 2)),
    lambda x: F.flatten(x),
    lambda x: F.flatten(x, 2),
    lambda x: x.reshape(-1),
    lambda x: x.flatten(0),
], ids=["reshape-1", "reshape4d", "flatten1", "flatten2", "method-reshape", "method-flatten0"])
def test_reshape_flatten(xp, op):
    check(op, [rand(xp, 2, 3, 4, 5, seed=1)])


@pytest.mark.parametrize("index", [
    (slice(1, 3), slice(None, None, 2)),
    0,
    -1,
    (Ellipsis, 1),
    (None, slice(None), 2),
    (slice(None), slice(None, None, -1)),
    (1, slice(0, 2), 3),
], ids=["slices", "int", "negative", "ellipsis", "newaxis", "reversed", "mixed"])
def test_get_item(xp, index):
    check(lambda x: F.get_item(x, index), [rand(xp, 3, 4, 5, seed=1)])
    check(lambda x: x[index], [rand(xp, 3, 4, 5, seed=2)], full=True)


def test_get_item_rejects_float_index_arrays(xp):
    x = nn.Tensor(rand(xp, 3, 4))
    with pytest.raises(TypeError, match="integers or booleans"):
        F.get_item(x, [0.0, 0.0, 1.0])


BROADCAST_SHAPES = [((3, 4, 5), (3, 4, 5)), ((3, 4, 5), (4, 1)), ((3, 4, 5), (5,)), ((1, 4, 1), (3, 1, 5)),
                    ((3, 4, 5), ()), ((2, 1), (2, 3))]


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES)
def test_binary_broadcasting(xp, name, sa, sb):
    op = getattr(F, name)
    a, b = rand(xp, *sa, seed=1), rand(xp, *sb, seed=2, low=0.5)  # b away from 0 for div
    y = op(nn.Tensor(a), nn.Tensor(b))
    assert y.shape == np.broadcast_shapes(sa, sb)
    report = check(op, [a, b])
    assert set(report) == {"input0", "input1"}


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
def test_binary_full_jacobian(xp, name):
    check(getattr(F, name), [rand(xp, 2, 3, seed=1), rand(xp, 3, seed=2, low=0.5)], full=True)


@pytest.mark.parametrize("fn", [
    lambda x: x + 2.0, lambda x: 2.0 + x, lambda x: x - 1.5, lambda x: 1.5 - x, lambda x: x * 3.0,
    lambda x: 3.0 * x, lambda x: x / 4.0, lambda x: 4.0 / x, lambda x: -x, lambda x: x ** 2, lambda x: x ** 3,
    lambda x: F.pow(F.abs(x), 0.5), lambda x: F.abs(x), lambda x: F.neg(x),
    lambda x: x * x + x,  # the same tensor used three times
], ids=["add-scalar", "radd", "sub-scalar", "rsub", "mul-scalar", "rmul", "div-scalar", "rdiv", "neg",
        "square", "cube", "sqrt-abs", "abs", "F.neg", "reuse"])
def test_unary_and_scalar_ops(xp, fn):
    check(fn, [rand(xp, 3, 4, seed=1, low=0.3)])


@pytest.mark.parametrize("axis,keepdims", [(None, False), (None, True), (0, False), (1, True), (-1, False),
                                           ((0, 2), False), ((0, -1), True)])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_reductions(xp, reduce, axis, keepdims):
    x = rand(xp, 3, 4, 5, seed=1)
    op = getattr(F, reduce)
    y = op(nn.Tensor(x), axis, keepdims)
    expect = getattr(np, reduce)(nn.to_numpy(x), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(nn.to_numpy(y.data), expect, rtol=1e-12)
    check(lambda x: op(x, axis, keepdims), [x])
    method = getattr(nn.Tensor, reduce)
    check(lambda x: method(x, axis, keepdims), [rand(xp, 2, 3, 2, seed=2)], full=True)


@pytest.mark.parametrize("reduction", ["paper", "mean", "sum"])
def test_mse_loss(xp, reduction):
    x, t = rand(xp, 4, 3, 5, 5, seed=1), rand(xp, 4, 3, 5, 5, seed=2)
    loss = F.mse_loss(nn.Tensor(x), nn.Tensor(t), reduction)
    sq = float(((nn.to_numpy(x) - nn.to_numpy(t)) ** 2).sum())
    divisor = {"paper": 4, "mean": x.size, "sum": 1}[reduction]
    assert loss.shape == ()
    assert abs(loss.item() - sq / divisor) <= 1e-12 * sq
    report = check(lambda x, t: F.mse_loss(x, t, reduction), [x, t])
    assert set(report) == {"input0", "input1"}
    check(lambda x, t: F.mse_loss(x, t, reduction), [rand(xp, 2, 3, seed=3), rand(xp, 2, 3, seed=4)], full=True)


# --- modules -----------------------------------------------------------------------------------
def test_module_gradcheck_small_network(xp, device):
    """A small network using every layer type: input and every parameter checked (params=model)."""
    nn.random.seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.LocalResponseNorm(3, alpha=0.5, beta=0.75, k=2.0),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),
        nn.ReLU(),
        nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(2 * 4 * 4, 5),
        nn.Reshape(5, 1),
    ).to(device)
    x = distinct(xp, 2, 3, 5, 5, seed=1, gap=0.05)
    report = check(model, [x], params=model, rtol=1e-5)
    assert set(report) == {"input0"} | {name for name, _ in model.named_parameters()}
    assert len(report) == 1 + 2 * 4


def test_module_gradcheck_full_jacobian(xp, device):
    nn.random.seed(1)
    model = nn.Sequential(nn.ConvTranspose2d(2, 1, 3, stride=2, padding=1, output_padding=1), nn.LeakyReLU(0.2),
                          nn.Conv2d(1, 2, 2)).to(device)
    check(model, [rand(xp, 1, 2, 2, 2, seed=3)], params=model, full=True, rtol=1e-5)


def test_dropout_module_gradcheck(xp, device):
    class Seeded(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 4)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            nn.random.seed(7)
            return self.drop(self.lin(x))

    model = Seeded().to(device)
    check(model, [rand(xp, 3, 6, seed=2)], params=model)


def test_a_point_beside_a_kink_is_checked_at_a_smaller_step():
    """x = 1e-7 sits closer to leaky ReLU's kink than the step eps = 1e-6 reaches: the central
    difference at eps straddles the kink (the average of the two slopes), the retry at eps / 10
    does not; a backward that is wrong by 10% still fails at every step."""
    x = np.array([1e-7])
    report = nn.gradcheck(lambda t: F.leaky_relu(t, 0.2), [x], seed=0, raise_on_failure=False)
    assert report["input0"] < 1e-9
    gy, direction = np.random.default_rng(0).standard_normal((2, 1))  # gradcheck's draws: gy, then the direction
    f = lambda v: F.leaky_relu(nn.Tensor(v), 0.2).data * gy
    straddled = float((f(x + 1e-6 * direction) - f(x - 1e-6 * direction))[0] / (2e-6 * direction[0]))
    assert abs(straddled - gy[0]) > 1e-2 * abs(gy[0])  # the first step alone fails rtol 1e-5 by far

    class WrongSlope(Function):
        def forward(self, t):
            return t * 2.0

        def backward(self, g):
            return g * 2.2

    with pytest.raises(AssertionError, match="input0"):
        nn.gradcheck(lambda t: WrongSlope()(t), [np.array([0.5, -1.0])], seed=0)


def test_the_gradcheck_command_draws_its_model_from_the_seed():
    from models.analyses.inspect_model import check_gradients
    first = check_gradients("fc8", seed=0)
    nn.random.seed(123)  # whatever ran before
    nn.random.generator().random(5)
    assert check_gradients("fc8", seed=0) == first and max(first.values()) < 1e-5


# --- autodiff semantics ------------------------------------------------------------------------
def test_gradient_accumulates_for_reused_tensor(xp):
    x = nn.Tensor(xp.asarray([1.0, -2.0, 3.0]), requires_grad=True)
    y = x * x + x * 3.0 + x  # d/dx = 2x + 4
    y.backward(xp.ones(3))
    np.testing.assert_allclose(nn.to_numpy(x.grad), [6.0, 0.0, 10.0])
    x2 = nn.Tensor(xp.asarray([1.5]), requires_grad=True)
    F.add(x2, x2).backward(xp.ones(1))
    np.testing.assert_allclose(nn.to_numpy(x2.grad), [2.0])


def test_leaf_gradients_accumulate_across_backward_calls(xp):
    x = nn.Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(nn.to_numpy(x.grad), [5.0, 5.0])
    x.zero_grad()
    assert x.grad is None


class Recorder(Function):
    """Identity that records the gradient it receives and how many times backward was called."""

    log = []

    def __init__(self, name):
        self.name = name

    def forward(self, x):
        return x

    def backward(self, gy):
        Recorder.log.append((self.name, gy.copy()))
        return gy


def test_diamond_graph_topological_order(xp):
    """Every op's backward runs once, after all the gradients of its output have arrived,
    even when the two paths of a diamond have different lengths."""
    Recorder.log = []
    x = nn.Tensor(xp.asarray([0.5, -1.0, 2.0]), requires_grad=True)
    a = Recorder("a")(x * 2.0)                    # shared node
    long = Recorder("long")(F.relu(a) * 3.0) * 1.0 + 0.0
    short = a * a
    out = Recorder("out")(long + short + a)
    out.backward(xp.ones(3))
    names = [name for name, _ in Recorder.log]
    assert names.count("a") == 1 and names.count("long") == 1 and names.count("out") == 1
    assert names.index("a") > names.index("long") > names.index("out")
    av = 2.0 * np.array([0.5, -1.0, 2.0])
    ga = 3.0 * (av > 0) + 2.0 * av + 1.0
    np.testing.assert_allclose(nn.to_numpy(dict(Recorder.log)["a"]), ga)
    np.testing.assert_allclose(nn.to_numpy(x.grad), 2.0 * ga)
    assert a.grad is None  # intermediate gradients are dropped unless retained


def test_retain_grad_keeps_intermediate_gradient(xp):
    x = nn.Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    h = (x * 3.0).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(nn.to_numpy(h.grad), [6.0, 12.0])
    np.testing.assert_allclose(nn.to_numpy(x.grad), [18.0, 36.0])


def test_no_grad_records_nothing(xp):
    x = nn.Tensor(rand(xp, 2, 3, 5, 5), requires_grad=True)
    w = nn.Tensor(rand(xp, 4, 3, 3, 3), requires_grad=True)
    with nn.no_grad():
        assert not nn.is_grad_enabled()
        y = F.relu(F.conv2d(x, w, padding=1)).sum()
    assert nn.is_grad_enabled()
    assert not y.requires_grad and y.creator is None
    with pytest.raises(RuntimeError):
        with nn.no_grad():
            raise RuntimeError("boom")
    assert nn.is_grad_enabled()  # restored after an exception
    z = F.conv2d(x, w, padding=1)
    assert z.requires_grad and z.creator is not None
    c = F.conv2d(nn.Tensor(x.data), nn.Tensor(w.data))  # constants: nothing recorded either
    assert not c.requires_grad and c.creator is None


def test_graph_freed_after_backward(xp):
    x = nn.Tensor(rand(xp, 2, 3, 6, 6), requires_grad=True)
    w = nn.Tensor(rand(xp, 4, 3, 3, 3), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    conv_fn = y.creator
    saved = set(conv_fn.__dict__)
    loss = F.mse_loss(y, nn.Tensor(xp.zeros(y.shape)))
    loss.backward()
    assert {"x", "w"} <= saved and conv_fn.__dict__ == {"released": True}  # saved input and weight released
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_retain_graph_allows_second_backward(xp):
    x = nn.Tensor(rand(xp, 2, 3, 6, 6), requires_grad=True)
    w = nn.Tensor(rand(xp, 4, 3, 3, 3), requires_grad=True)
    loss = F.mse_loss(F.leaky_relu(F.conv2d(x, w, padding=1)), nn.Tensor(xp.zeros((2, 4, 6, 6))))
    loss.backward(retain_graph=True)
    first = nn.to_numpy(w.grad).copy()
    loss.backward()
    np.testing.assert_allclose(nn.to_numpy(w.grad), 2 * first, rtol=1e-12)
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_second_pass_propagates_only_its_own_gradient(xp):
    """A tensor that keeps a .grad (an earlier root, or retain_grad) must not send it back again
    (PyTorch semantics: .grad accumulates, but each pass propagates only what flows in it)."""
    x = nn.Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    y = x * 2.0
    y.backward(xp.ones(2), retain_graph=True)  # x.grad = 2; y keeps grad 1 as the root
    (y * 3.0).sum().backward()  # x.grad += 6
    np.testing.assert_allclose(nn.to_numpy(x.grad), [8.0, 8.0])
    np.testing.assert_allclose(nn.to_numpy(y.grad), [1.0, 1.0])

    x.zero_grad()
    h = (x * 3.0).retain_grad()
    loss = (h * h).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(nn.to_numpy(h.grad), 2 * np.array([6.0, 12.0]))
    np.testing.assert_allclose(nn.to_numpy(x.grad), 2 * np.array([18.0, 36.0]))


def test_backward_argument_errors(xp):
    y = nn.Tensor(rand(xp, 2, 3), requires_grad=True) * 2.0
    with pytest.raises(ValueError, match="scalar"):
        y.backward()
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        y.backward(xp.ones((3, 2)))


def test_forward_and_backward_hooks(xp, device):
    nn.random.seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(3, 1, 1)).to(device)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    seen = {}
    h1 = model[1].register_forward_hook(lambda m, inputs, out: seen.__setitem__("act", (inputs[0], out)))
    h2 = model[1].register_full_backward_hook(lambda m, gi, go: seen.__setitem__("grad", go[0].copy()))
    x = rand(xp, 2, 2, 5, 5, seed=1)
    out = model(nn.Tensor(x))
    gy = rand(xp, *out.shape, seed=2)
    out.backward(gy)
    inp, act = seen["act"]
    np.testing.assert_allclose(nn.to_numpy(act.data), nn.to_numpy(F.leaky_relu(inp, 0.2).data))
    # the gradient of the activation: conv 1x1's input gradient
    w2 = nn.to_numpy(model[2].weight.data)[:, :, 0, 0]  # (1, 3)
    expect = np.einsum("nchw,co->nohw", nn.to_numpy(gy), w2)
    np.testing.assert_allclose(nn.to_numpy(seen["grad"]), expect, rtol=1e-12)

    # a backward hook's return value replaces the input gradient flowing further back
    h2.remove()
    model[1].register_full_backward_hook(lambda m, gi, go: (gi[0] * 0,))
    model.zero_grad()
    model(nn.Tensor(x)).backward(gy)
    assert float(np.abs(nn.to_numpy(model[0].weight.grad)).max()) == 0.0
    assert float(np.abs(nn.to_numpy(model[2].weight.grad)).max()) > 0.0

    # a forward hook's return value replaces the output; removed hooks are not called
    h1.remove()
    seen.clear()
    model[2].register_forward_hook(lambda m, inputs, out: out * 2.0)
    with nn.no_grad():
        doubled = model(nn.Tensor(x))
    assert "act" not in seen
    model2_out = F.conv2d(F.leaky_relu(F.conv2d(nn.Tensor(x), model[0].weight, model[0].bias, padding=1), 0.2),
                          model[2].weight, model[2].bias)
    np.testing.assert_allclose(nn.to_numpy(doubled.data), 2 * nn.to_numpy(model2_out.data), rtol=1e-12)


def test_im2col_matches_its_definition_including_padding_only_phases():
    """col[c, u, v, n, i, j] == x_pad[n, c, i sH + u, j sW + v], by brute force, over strides, paddings
    larger than the stride (phases holding padding only), negative paddings (a crop, which the
    transposed convolution's phases use) and kernels larger than the stride."""
    import itertools
    from nn.functional.conv_engine import im2col_cnhw
    from nn.functional.conv_reference import conv_output_size
    rng = np.random.default_rng(0)
    for h, p, s, k in itertools.product((1, 2, 5), (-1, 0, 1, 3), (1, 2, 3, 4), (1, 2, 3, 5)):
        if k > h + 2 * p:
            continue
        x = rng.standard_normal((2, 3, h, h + 1))
        out = (conv_output_size(h, k, s, p), conv_output_size(h + 1, k, s, p))
        col = im2col_cnhw(x, (k, k), (s, s), (p, p), out)
        x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p >= 0 else x[:, :, -p:p, -p:p]
        for u, v in itertools.product(range(k), range(k)):
            expected = x_pad[:, :, u:u + s * (out[0] - 1) + 1:s, v:v + s * (out[1] - 1) + 1:s]
            assert np.array_equal(col[:, u, v], expected.transpose(1, 0, 2, 3)), (h, p, s, k, u, v)


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_weight_gradients_are_contiguous_like_the_weights(xp, op, bands):
    """The optimiser reads each gradient several times per step: a transposed view there would
    make every pass a strided read."""
    x = nn.Tensor(rand(xp, 2, 4, 9, 8, seed=1))
    shape = (6, 4, 4, 4) if op == "conv2d" else (4, 6, 4, 4)
    w = nn.Tensor(rand(xp, *shape, seed=2), requires_grad=True)
    b = nn.Tensor(rand(xp, 6, seed=3), requires_grad=True)
    fn = F.conv2d if op == "conv2d" else F.conv_transpose2d
    fn(x, w, b, stride=2, padding=1).sum().backward()
    assert w.grad.shape == shape and w.grad.flags.c_contiguous and b.grad.flags.c_contiguous


@pytest.mark.parametrize("name", list(OPS))
def test_every_op_of_the_table_passes_its_gradient_check(xp, name):
    """Each row of nn/functional/op_table.py (what ``cli.py gradcheck OP`` runs): random direction,
    and the full Jacobian (the shapes are tiny), in float64, on each device."""
    example = OPS[name]
    rng = np.random.default_rng(3)
    # away from 0, so that ReLU-like kinks are not straddled by the finite differences
    inputs = [xp.asarray(rng.uniform(0.1, 1.0, s) * rng.choice([-1, 1], s)) for s in example.shapes]
    nn.gradcheck(example.call, inputs)
    nn.gradcheck(example.call, inputs, full_jacobian=True)
