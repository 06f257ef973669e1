"""The plain convolutions of nn/functional/conv_reference.py: gradient-checked, and equal to the
fast ones of conv.py (every layout the fast ones choose), forward and backward, on every device."""
import numpy as np
import pytest

import nn
import nn.functional as F
from nn.functional import conv_reference
from tests.conftest import to_numpy

CASES = [  # (op, x shape, w shape, stride, padding, output_padding, groups)
    ("conv2d", (2, 4, 9, 7), (6, 4, 3, 3), 1, 1, 0, 1),
    ("conv2d", (2, 4, 11, 11), (6, 2, 5, 5), 2, 2, 0, 2),
    ("conv2d", (1, 3, 8, 8), (4, 3, 4, 4), 2, 1, 0, 1),
    ("conv_transpose2d", (2, 4, 5, 6), (4, 3, 4, 4), 2, 1, 0, 1),
    ("conv_transpose2d", (2, 4, 5, 5), (4, 2, 5, 5), 2, 2, 1, 2),
]


def run(xp, case, reference):
    op, xs, ws, stride, padding, output_padding, groups = case
    rng = np.random.default_rng(0)
    x = nn.Tensor(xp.asarray(rng.standard_normal(xs).astype(np.float32)), requires_grad=True)
    w = nn.Tensor(xp.asarray(rng.standard_normal(ws).astype(np.float32)), requires_grad=True)
    out_channels = ws[0] if op == "conv2d" else ws[1] * groups
    b = nn.Tensor(xp.asarray(rng.standard_normal(out_channels).astype(np.float32)), requires_grad=True)
    with F.reference_convolutions(reference):
        if op == "conv2d":
            y = F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
        else:
            y = F.conv_transpose2d(x, w, b, stride=stride, padding=padding, output_padding=output_padding,
                                   groups=groups)
    gy = xp.asarray(rng.standard_normal(y.shape).astype(np.float32))
    y.backward(gy)
    return [to_numpy(a) for a in (y.data, x.grad, w.grad, b.grad)]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_the_reference_equals_the_fast_convolution(xp, case):
    for fast, plain in zip(run(xp, case, False), run(xp, case, True)):
        np.testing.assert_allclose(plain, fast, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_the_reference_passes_its_gradient_check(case):
    op, xs, ws, stride, padding, output_padding, groups = case
    rng = np.random.default_rng(1)
    with F.reference_convolutions():
        if op == "conv2d":
            def fn(x, w):
                return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)
        else:
            def fn(x, w):
                return F.conv_transpose2d(x, w, stride=stride, padding=padding, output_padding=output_padding,
                                          groups=groups)
        nn.gradcheck(fn, [rng.standard_normal(xs), rng.standard_normal(ws)])


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 8))
    col = conv_reference.im2col_nchw(x, (3, 3), (2, 1), (1, 2))
    c = rng.standard_normal(col.shape)
    back = conv_reference.col2im_nchw(c, x.shape, (3, 3), (2, 1), (1, 2))
    assert np.isclose((col * c).sum(), (x * back).sum())


def test_training_with_the_reference_convolutions_follows_the_fast_run(tmp_path):
    import h5py
    from models.training.train import TrainConfig, train
    from tests.conftest import sample_folder
    photos = sample_folder(tmp_path / "photos", 6)
    runs = {}
    for reference in (False, True):
        out = tmp_path / f"run_{reference}"
        train(TrainConfig(feature="hog", data=str(photos), out=str(out), iters=3, batch_size=2, width=1 / 16,
                          image_size=64, val_every=3, checkpoint_every=3, workers=1, crops=0, reference=reference),
              log=lambda *_: None)
        with h5py.File(out / "checkpoint.h5", "r") as f:
            runs[reference] = f["model/upconvJ6/weight"][()]
    np.testing.assert_allclose(runs[True], runs[False], rtol=1e-3, atol=1e-5)
