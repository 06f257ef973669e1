"""``nn`` against PyTorch, from numbers stored by ``tests/reference/make_nn_fixtures.py`` (torch not needed).

Every op's float32 forward output and input/weight/bias gradients must agree with torch's within
1e-5 relative (max |ours - ref| / max |ref|); Adam and SGD (momentum, Nesterov, weight decay) must
follow torch's parameters step by step for 10 steps within 1e-6 relative (and the total update
p_10 - p_0 within 1e-4 relative, which resolves the small Adam steps).
"""
import os

import numpy as np
import pytest

import nn
import nn.functional as F

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "nn_reference.npz")
OP_RTOL = 1e-5
OPTIM_RTOL = 1e-6
STEP_RTOL = 1e-4  # on the displacement p_t - p_0 (float32 rounding of p ~ 1e-7 |p|)


def _load():
    if not os.path.exists(FIXTURE):
        return None
    with np.load(FIXTURE, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    for a in data.values():
        a.flags.writeable = False  # an op writing into its input (or a test aliasing it) fails loudly
    return data


DATA = _load()
CASES = [] if DATA is None else [str(c) for c in DATA["cases"]]
OP_CASES = [c for c in CASES if str(DATA[f"{c}.op"]) not in ("adam", "sgd")]
OPTIM_CASES = [c for c in CASES if str(DATA[f"{c}.op"]) in ("adam", "sgd")]


def get(case, name, default=None):
    return DATA.get(f"{case}.{name}", default)


def setting(case, name):
    value = DATA[f"{case}.{name}"]
    return tuple(int(v) for v in value) if value.ndim else value.item()


def rel_err(ours, ref):
    ours, ref = nn.to_numpy(ours).astype(np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


def test_fixture_present_and_small():
    assert DATA is not None, f"missing {FIXTURE}: run python tests/reference/make_nn_fixtures.py where torch is installed"
    assert os.path.getsize(FIXTURE) < 2_000_000
    ops = {str(DATA[f"{c}.op"]) for c in CASES}
    assert ops >= {"conv2d", "conv_transpose2d", "linear", "relu", "leaky_relu", "max_pool2d",
                   "local_response_norm", "mse_loss", "concat_flatten", "adam", "sgd"}


def run_op(case, xp):
    """(outputs and gradients we compute, keyed like the fixture)."""
    op = str(DATA[f"{case}.op"])
    leaf = lambda name: nn.Tensor(xp.asarray(get(case, name)), requires_grad=True)  # noqa: E731
    x = leaf("x")
    inputs = {"gx": x}
    if op in ("conv2d", "sparse_input_conv2d", "conv_transpose2d", "linear"):
        w = leaf("w")
        b = leaf("b") if get(case, "b") is not None else None
        inputs.update(gw=w, gb=b)
        if op == "conv2d":
            y = F.conv2d(x, w, b, stride=setting(case, "stride"), padding=setting(case, "padding"),
                         groups=setting(case, "groups"))
        elif op == "sparse_input_conv2d":
            y = F.sparse_input_conv2d(x, w, b, stride=setting(case, "stride"), padding=setting(case, "padding"))
        elif op == "conv_transpose2d":
            y = F.conv_transpose2d(x, w, b, stride=setting(case, "stride"), padding=setting(case, "padding"),
                                   output_padding=setting(case, "output_padding"), groups=setting(case, "groups"))
        else:
            y = F.linear(x, w, b)
    elif op == "relu":
        y = F.relu(x)
    elif op == "leaky_relu":
        y = F.leaky_relu(x, float(setting(case, "negative_slope")))
    elif op == "max_pool2d":
        y = F.max_pool2d(x, setting(case, "kernel"), setting(case, "stride"), setting(case, "padding"),
                         bool(setting(case, "ceil_mode")))
    elif op == "local_response_norm":
        y = F.local_response_norm(x, setting(case, "size"), setting(case, "alpha"), setting(case, "beta"),
                                  setting(case, "k"))
    elif op == "mse_loss":
        target = leaf("t")
        inputs["gt"] = target
        y = F.mse_loss(x, target, str(setting(case, "reduction")))
    elif op == "concat_flatten":
        x2 = leaf("x2")
        inputs["gx2"] = x2
        y = F.flatten(F.concat([x, x2], axis=setting(case, "axis")), 1)
    elif op == "abs":
        y = F.abs(x)
    elif op == "pow":
        y = F.abs(x) ** float(setting(case, "exponent"))
    else:
        raise AssertionError(f"unknown op {op}")
    y.backward(xp.asarray(get(case, "gy")))
    return y, inputs


@pytest.mark.parametrize("case", OP_CASES)
def test_op_matches_torch(xp, case):
    y, inputs = run_op(case, xp)
    assert y.dtype == np.float32
    errors = {"y": rel_err(y.data, get(case, "y"))}
    for name, tensor in inputs.items():
        ref = get(case, name)
        if tensor is None:
            assert ref is None, f"{case}: torch has {name} but we have no such input"
            continue
        assert tensor.grad is not None, f"{case}: no gradient for {name}"
        assert tensor.grad.dtype == np.float32, (name, tensor.grad.dtype)
        errors[name] = rel_err(tensor.grad, ref)
    bad = {k: v for k, v in errors.items() if v > OP_RTOL}
    assert not bad, f"{case}: relative errors above {OP_RTOL}: {bad} (all: {errors})"


def make_optimiser(case, params):
    op = str(DATA[f"{case}.op"])
    lr, wd = float(setting(case, "lr")), float(setting(case, "weight_decay"))
    if op == "adam":
        betas = tuple(float(b) for b in get(case, "betas"))
        return nn.optim.Adam(params, lr=lr, betas=betas, eps=float(setting(case, "eps")), weight_decay=wd)
    return nn.optim.SGD(params, lr=lr, momentum=float(setting(case, "momentum")), weight_decay=wd,
                        nesterov=bool(setting(case, "nesterov")))


@pytest.mark.parametrize("case", OPTIM_CASES)
def test_optimiser_matches_torch(xp, case):
    params = [nn.Parameter(xp.array(get(case, "p0"), copy=True)), nn.Parameter(xp.array(get(case, "p1"), copy=True))]
    opt = make_optimiser(case, params)
    g0, g1, after0, after1 = (get(case, k) for k in ("g0", "g1", "after0", "after1"))
    assert len(g0) == 10
    for step in range(len(g0)):
        params[0].grad, params[1].grad = xp.asarray(g0[step]), xp.asarray(g1[step])
        opt.step()
        for p, ref in ((params[0], after0[step]), (params[1], after1[step])):
            assert p.data.dtype == np.float32
            err = rel_err(p.data, ref)
            assert err <= OPTIM_RTOL, f"{case}: step {step + 1}: relative error {err:.2e}"
    for p, p0, ref in ((params[0], get(case, "p0"), after0[-1]), (params[1], get(case, "p1"), after1[-1])):
        moved = nn.to_numpy(p.data).astype(np.float64) - p0
        err = rel_err(moved, ref.astype(np.float64) - p0)
        assert err <= STEP_RTOL, f"{case}: total update after 10 steps off by {err:.2e} relative"


def test_every_op_of_the_table_has_a_pytorch_reference():
    """Each row of nn/functional/op_table.py names the case family it is compared with here; a new
    op without a reference fails this test."""
    from nn.functional.op_table import OPS
    ops = {str(DATA[f"{c}.op"]) for c in CASES}
    with np.load(FIXTURE.replace("nn_reference", "tensor_reference"), allow_pickle=False) as tensor_cases:
        ops |= {str(c) for c in tensor_cases["cases"]}  # the tensor methods' cases (make_tensor_fixtures.py)
    missing = {name: row.reference for name, row in OPS.items() if row.reference not in ops}
    assert not missing, f"ops without PyTorch reference cases (add them to tests/reference/make_nn_fixtures.py): {missing}"
