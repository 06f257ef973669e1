"""Modules, state dicts, HDF5 weight files, optimiser/scheduler state, modes, devices, and the
argument checks of the ops (each bad input raises a ValueError naming the op and both shapes)."""
import math
import os

import numpy as np
import pytest

import nn
import nn.functional as F
from models.networks import decoders


def small_model(seed=0, device="cpu"):
    nn.random.seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * 8 * 8, 5),
    ).to(device)


def params_np(model):
    return {name: nn.to_numpy(p.data).copy() for name, p in model.named_parameters()}


def assert_same_params(a, b, equal=True):
    pa, pb = params_np(a) if isinstance(a, nn.Module) else a, params_np(b) if isinstance(b, nn.Module) else b
    assert list(pa) == list(pb)
    same = all(np.array_equal(pa[k], pb[k]) for k in pa)
    assert same == equal


# --- state dicts -------------------------------------------------------------------------------
def test_state_dict_keys_and_round_trip(xp, device):
    a, b = small_model(0, device), small_model(1, device)
    sd = a.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias", "5.weight", "5.bias"]
    assert sd["2.weight"].shape == (4, 2, 4, 4)  # ConvTranspose2d: (C_in, C_out/groups, kH, kW)
    assert_same_params(a, b, equal=False)
    missing, unexpected = b.load_state_dict(sd)
    assert missing == [] and unexpected == []
    assert_same_params(a, b)
    # loading copies: changing the source afterwards does not change the model
    a.parameters()[0].data += 1
    assert not np.array_equal(nn.to_numpy(a.parameters()[0].data), nn.to_numpy(b.parameters()[0].data))
    # the dtype and device of the target are kept
    b.load_state_dict({k: nn.to_numpy(v).astype(np.float64) for k, v in a.state_dict().items()})
    assert all(p.dtype == np.float32 and p.device == device for p in b.parameters())
    assert_same_params(a, b)


def test_named_sequential_and_no_bias():
    from collections import OrderedDict
    model = nn.Sequential(OrderedDict(convJ1=nn.Conv2d(2, 3, 3, bias=False), act=nn.LeakyReLU(),
                                      upconvJ5=nn.ConvTranspose2d(3, 2, 4, 2, 1)))
    assert list(model.state_dict()) == ["convJ1.weight", "upconvJ5.weight", "upconvJ5.bias"]
    assert model["convJ1"] is model[0] and len(model) == 3


def test_load_state_dict_errors():
    model = small_model()
    sd = {k: v.copy() for k, v in model.state_dict().items()}
    bad = dict(sd, **{"0.weight": np.zeros((4, 3, 5, 5), np.float32)})
    with pytest.raises(ValueError) as err:
        model.load_state_dict(bad)
    message = str(err.value)
    assert "0.weight" in message and "(4, 3, 5, 5)" in message and "(4, 3, 3, 3)" in message

    missing = {k: v for k, v in sd.items() if k != "5.bias"}
    with pytest.raises(ValueError, match=r"missing \['5.bias'\]"):
        model.load_state_dict(missing)
    extra = dict(sd, **{"9.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"unexpected \['9.weight'\]"):
        model.load_state_dict(extra)
    assert model.load_state_dict(missing, strict=False) == (["5.bias"], [])
    assert model.load_state_dict(extra, strict=False) == ([], ["9.weight"])


# --- HDF5 weight files -------------------------------------------------------------------------
def test_save_and_load_module(tmp_path, xp, device):
    a, b = small_model(0, device), small_model(1, device)
    path = tmp_path / "weights" / "model.h5"
    nn.save(a.state_dict(), path)
    assert sorted(os.listdir(path.parent)) == ["model.h5"]  # no temporary file left behind
    assert b.load_state_dict(nn.load(path)) == ([], [])
    assert_same_params(a, b)
    arrays, attrs = nn.load_arrays(path)
    assert attrs["format"] == "featinv"
    assert set(arrays) == set(a.state_dict()) and arrays["0.weight"].dtype == np.float32

    import h5py
    with h5py.File(path, "r") as f:
        assert "0/weight" in f  # dots open groups


def test_load_module_shape_mismatch_names_file(tmp_path):
    path = tmp_path / "m.h5"
    nn.save(small_model().state_dict(), path)
    other = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1))
    with pytest.raises(ValueError, match="m.h5"):
        other.load_state_dict(nn.load(path))
    wrong = nn.Sequential(nn.Conv2d(3, 4, 5, padding=1), nn.LeakyReLU(0.2),
                          nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 8 * 8, 5))
    with pytest.raises(ValueError, match=r"0.weight.*\(4, 3, 3, 3\).*\(4, 3, 5, 5\)"):
        wrong.load_state_dict(nn.load(path))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "model.h5"
    model = small_model()
    nn.save(model.state_dict(), path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        # h5py cannot store an object array: the write fails half-way through the file
        nn.save_arrays({"a.ok": np.ones(3, np.float32), "b.bad": np.array([object()], dtype=object)}, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.h5"]
    fresh = small_model(5)
    fresh.load_state_dict(nn.load(path))
    assert_same_params(model, fresh)


def test_unreadable_files_raise_weight_file_error(tmp_path):
    with pytest.raises(nn.WeightFileError, match="no such file"):
        nn.load_arrays(tmp_path / "absent.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(nn.WeightFileError, match="junk.h5"):
        small_model().load_state_dict(nn.load(junk))


# --- optimisers and schedules ------------------------------------------------------------------
def train_steps(model, opt, steps, seed):
    rng = np.random.default_rng(seed)
    xp = nn.get_array_module(model.parameters()[0].data)
    for _ in range(steps):
        x = nn.Tensor(xp.asarray(rng.standard_normal((2, 3, 4, 4)).astype(np.float32)))
        t = nn.Tensor(xp.asarray(rng.standard_normal((2, 5)).astype(np.float32)))
        opt.zero_grad()
        F.mse_loss(model(x), t).backward()
        opt.step()


def snapshot(state):
    """A deep host copy, as a checkpoint file would hold."""
    return {k: nn.to_numpy(v).copy() if hasattr(v, "shape") else v for k, v in state.items()}


def snapshot_optimizer(state):
    """A deep host copy of an optimiser's state_dict()."""
    return {"state": {i: snapshot(entries) for i, entries in state["state"].items()},
            "param_groups": [dict(group) for group in state["param_groups"]]}


@pytest.mark.parametrize("make", [
    lambda ps: nn.optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
    lambda ps: nn.optim.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True),
], ids=["adam", "sgd-nesterov"])
def test_optimiser_state_round_trip_resumes_identically(xp, device, make, tmp_path):
    model = small_model(0, device)
    opt = make(model.parameters())
    train_steps(model, opt, 3, seed=1)
    saved_model, saved_opt = snapshot(model.state_dict()), snapshot_optimizer(opt.state_dict())
    assert saved_opt["param_groups"][0]["params"] == list(range(len(model.parameters())))
    assert set(saved_opt["state"]) == set(range(len(model.parameters())))
    train_steps(model, opt, 4, seed=2)
    reference = params_np(model)

    # resume from the in-memory snapshot, twice from the same dict (loading must not alias it)
    for _ in range(2):
        resumed = small_model(9, device)
        resumed.load_state_dict(saved_model)
        opt2 = make(resumed.parameters())
        opt2.load_state_dict(saved_opt)
        train_steps(resumed, opt2, 4, seed=2)
        assert_same_params(reference, resumed)

    # and through an HDF5 file of arrays
    nn.save({f"{i}.{name}": np.asarray(v) for i, entries in saved_opt["state"].items() for name, v in entries.items()},
            tmp_path / "opt.h5")
    state = {}
    for key, value in nn.load(tmp_path / "opt.h5").items():
        index, name = key.split(".")
        state.setdefault(int(index), {})[name] = value
    resumed = small_model(9, device)
    resumed.load_state_dict(saved_model)
    opt3 = make(resumed.parameters())
    opt3.load_state_dict({"state": state, "param_groups": saved_opt["param_groups"]})
    train_steps(resumed, opt3, 4, seed=2)
    assert_same_params(reference, resumed)


def test_adam_bias_correction_counts_each_parameters_own_updates(xp):
    """As torch.optim.Adam: a parameter without a gradient on some steps is neither updated nor
    counted, so it follows exactly the path of an Adam that saw only its own steps."""
    rng = np.random.default_rng(0)
    grads = [xp.asarray(rng.standard_normal(3).astype(np.float32)) for _ in range(6)]
    start = xp.asarray(rng.standard_normal(3).astype(np.float32))
    always, late, alone = (nn.Parameter(start.copy()) for _ in range(3))
    shared = nn.optim.Adam([always, late], lr=0.1)
    own = nn.optim.Adam([alone], lr=0.1)
    for step, g in enumerate(grads):
        always.grad, late.grad = g, (g if step >= 3 else None)
        shared.step()
        if step >= 3:
            alone.grad = g
            own.step()
    assert shared.state[late]["step"] == 3 and shared.state[always]["step"] == 6
    np.testing.assert_array_equal(nn.to_numpy(late.data), nn.to_numpy(alone.data))
    assert not np.array_equal(nn.to_numpy(late.data), nn.to_numpy(always.data))


def test_optimiser_state_errors():
    model = small_model()
    opt = nn.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="parameter 99"):
        opt.load_state_dict({"state": {99: {"exp_avg": np.zeros(3)}}, "param_groups": opt.state_dict()["param_groups"]})
    with pytest.raises(ValueError, match="empty"):
        nn.optim.SGD([], lr=0.1)


def _rates_and_restore(make, steps):
    """The lr after each of ``steps`` calls of step() of the schedule ``make(optimizer)``; and
    whether a schedule restored from its state_dict (on an optimiser with another lr) goes on alike."""
    opt = nn.optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=1.0)
    sched = make(opt)
    lrs = []
    for _ in range(steps):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    opt2 = nn.optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=123.0)
    sched2 = make(opt2)
    sched2.load_state_dict(sched.state_dict())
    sched.step(), sched2.step()
    return lrs, opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"] == sched.lr_at(1.0, steps + 1)


def test_step_lr():
    lrs, restored = _rates_and_restore(lambda opt: nn.optim.StepLR(opt, step_size=2, gamma=0.5), 6)
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25, 0.125] and restored


def test_cosine_annealing_lr_follows_pytorch():
    """Values printed by torch.optim.lr_scheduler.CosineAnnealingLR(SGD(lr=1), T_max=4, eta_min=0.1),
    past T_max too (the cosine goes on, as PyTorch's does)."""
    lrs, restored = _rates_and_restore(lambda opt: nn.optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1), 6)
    np.testing.assert_allclose(lrs, [0.8681980515339464, 0.55, 0.23180194846605368, 0.1, 0.2318019484660536, 0.55],
                               rtol=1e-12)
    assert restored
    with pytest.raises(ValueError, match="T_max"):
        nn.optim.CosineAnnealingLR(nn.optim.SGD([nn.Parameter(np.zeros(1, np.float32))]), T_max=0)


def test_exponential_moving_average(xp, device):
    """a <- d a + (1 - d) p after each update, starting at the model's weights (float64 closed
    form); the average is a copy the model's later steps do not touch until update()."""
    model = small_model(device=device)
    start = params_np(model)
    average = nn.optim.ExponentialMovingAverage(model, decay=0.75)
    assert average.module.device == device
    expected = {k: v.astype(np.float64) for k, v in start.items()}
    for t in range(3):
        for name, p in model.named_parameters():
            p.data = p.data + xp.asarray(np.float32(t + 1))
        assert_same_params(average.module, start if t == 0 else average.module)
        average.update(model)
        current = params_np(model)
        expected = {k: 0.75 * expected[k] + 0.25 * current[k] for k in expected}
    got = params_np(average.module)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-6, err_msg=name)
        assert not np.allclose(got[name], params_np(model)[name])
    restored = nn.optim.ExponentialMovingAverage(small_model(seed=1, device=device), decay=0.75)
    restored.load_state_dict(average.state_dict())
    assert_same_params(restored.module, average.module)
    for bad in (0.0, 1.0, 1, -0.5):
        with pytest.raises(ValueError, match="decay must be a float in"):
            nn.optim.ExponentialMovingAverage(model, decay=bad)


def test_reduce_lr_on_plateau():
    opt = nn.optim.Adam([nn.Parameter(np.zeros(2, np.float32))], lr=1.0)
    sched = nn.optim.ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.01, min_lr=0.2)
    lrs = []
    for value in [10, 9, 8.95, 8.95, 8.95, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]:
        sched.step(value)
        lrs.append(opt.param_groups[0]["lr"])
    # 8.95 is not a 1% improvement on 9: the third such call reduces; then 5 improves;
    # later reductions are clamped at min_lr
    assert lrs[:5] == [1.0, 1.0, 1.0, 1.0, 0.5]
    assert lrs[5:8] == [0.5, 0.5, 0.5] and lrs[8] == 0.25
    assert lrs[-1] == 0.2 and min(lrs) == 0.2
    state = sched.state_dict()
    sched2 = nn.optim.ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.01, min_lr=0.2)
    sched2.load_state_dict(state)
    assert sched2.best == 5 and sched2.num_bad_epochs == sched.num_bad_epochs


# --- modes, devices ----------------------------------------------------------------------------
def test_train_eval_switches_dropout(xp, device):
    model = nn.Sequential(nn.Linear(20, 30), nn.Sequential(nn.Dropout(0.5))).to(device)
    x = nn.Tensor(xp.asarray(np.random.default_rng(0).standard_normal((8, 20)).astype(np.float32)))
    assert model.training and model[1][0].training
    nn.random.seed(0)
    train_out = nn.to_numpy(model(x).data)
    lin_out = nn.to_numpy(model[0](x).data)
    assert 0.3 < (train_out == 0).mean() < 0.7
    kept = train_out != 0
    np.testing.assert_allclose(train_out[kept], 2 * lin_out[kept], rtol=1e-6)
    assert model.eval() is model and not model[1][0].training
    np.testing.assert_array_equal(nn.to_numpy(model(x).data), lin_out)
    model.train()
    assert model[1][0].training


def test_dropout_masks_follow_the_seed():
    x = nn.Tensor(np.ones((4, 50), np.float32))
    nn.random.seed(3)
    a = F.dropout(x, 0.5).numpy()
    nn.random.seed(3)
    b = F.dropout(x, 0.5).numpy()
    c = F.dropout(x, 0.5).numpy()
    assert np.array_equal(a, b) and not np.array_equal(b, c)
    with pytest.raises(ValueError, match="dropout"):
        F.dropout(x, 1.0)


def test_module_to_cpu():
    model = small_model()
    x = nn.Tensor(np.ones((1, 3, 4, 4), np.float32))
    before = model(x).numpy()
    assert model.to("cpu") is model and model.device == "cpu"
    assert all(isinstance(p.data, np.ndarray) for p in model.parameters())
    np.testing.assert_array_equal(model(x).numpy(), before)
    with pytest.raises(ValueError, match="unknown device"):
        model.to("tpu")
    t = nn.Tensor(np.ones(2, np.float32), requires_grad=True).to("cpu")
    assert t.requires_grad and t.device == "cpu"


@pytest.mark.gpu
def test_module_to_gpu_and_back():
    import cupy as xp
    model = small_model()
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    cpu_out = model(nn.Tensor(x)).numpy()
    model.to("gpu")
    assert model.device == "gpu"
    gpu_out = model(nn.Tensor(xp.asarray(x))).numpy()
    np.testing.assert_allclose(gpu_out, cpu_out, rtol=1e-4, atol=1e-5)
    model.to("cpu")
    assert model.device == "cpu"


# --- argument checks ---------------------------------------------------------------------------
def t32(*shape):
    return nn.Tensor(np.zeros(shape, np.float32))


def t64(*shape):
    return nn.Tensor(np.zeros(shape, np.float64))


BAD_INPUTS = [
    # (call, fragments the message must contain)
    ("conv2d wrong rank", lambda: F.conv2d(t32(3, 8, 8), t32(4, 3, 3, 3)),
     ["conv2d", "rank 4", "(N, C, H, W)", "(3, 8, 8)"]),
    ("conv2d weight rank", lambda: F.conv2d(t32(1, 3, 8, 8), t32(4, 3, 3)),
     ["conv2d", "weight", "(C_out, C_in/groups, kH, kW)", "(4, 3, 3)"]),
    ("conv2d channels", lambda: F.conv2d(t32(2, 3, 8, 8), t32(4, 2, 3, 3)),
     ["conv2d", "(2, 3, 8, 8)", "(4, 2, 3, 3)", "expected 2 input channels"]),
    ("conv2d groups", lambda: F.conv2d(t32(2, 4, 8, 8), t32(3, 2, 3, 3), groups=2),
     ["conv2d", "(2, 4, 8, 8)", "(3, 2, 3, 3)", "groups=2"]),
    ("conv2d groups vs channels", lambda: F.conv2d(t32(2, 4, 8, 8), t32(4, 4, 3, 3), groups=2),
     ["conv2d", "(2, 4, 8, 8)", "(4, 4, 3, 3)", "expected 8 input channels"]),
    ("conv2d mixed dtypes", lambda: F.conv2d(t64(1, 3, 8, 8), t32(4, 3, 3, 3)),
     ["conv2d", "float32", "float64"]),
    ("conv2d bias dtype", lambda: F.conv2d(t32(1, 3, 8, 8), t32(4, 3, 3, 3), t64(4)),
     ["conv2d", "float32", "float64"]),
    ("conv2d bias shape", lambda: F.conv2d(t32(1, 3, 8, 8), t32(4, 3, 3, 3), t32(5)),
     ["conv2d", "bias shape (5,)", "(4,)"]),
    ("conv2d kernel too large", lambda: F.conv2d(t32(1, 3, 4, 4), t32(4, 3, 7, 7), padding=1),
     ["conv2d", "kernel (7, 7)", "padded input (6, 6)", "(1, 3, 4, 4)"]),
    ("conv2d int input", lambda: F.conv2d(nn.Tensor(np.zeros((1, 3, 4, 4), np.int64)), t32(4, 3, 3, 3)),
     ["conv2d", "int64"]),
    ("conv_transpose2d rank", lambda: F.conv_transpose2d(t32(8, 8), t32(4, 3, 3, 3)),
     ["conv_transpose2d", "rank 4", "(8, 8)"]),
    ("conv_transpose2d channels", lambda: F.conv_transpose2d(t32(2, 3, 8, 8), t32(4, 2, 4, 4), stride=2),
     ["conv_transpose2d", "(2, 3, 8, 8)", "(4, 2, 4, 4)", "expected 4 input channels"]),
    ("conv_transpose2d mixed dtypes", lambda: F.conv_transpose2d(t32(1, 4, 8, 8), t64(4, 2, 4, 4)),
     ["conv_transpose2d", "float32", "float64"]),
    ("conv_transpose2d output_padding", lambda: F.conv_transpose2d(t32(1, 4, 8, 8), t32(4, 2, 4, 4), stride=2,
                                                                   output_padding=2),
     ["conv_transpose2d", "(1, 4, 8, 8)", "(4, 2, 4, 4)", "output_padding"]),
    ("conv_transpose2d empty output", lambda: F.conv_transpose2d(t32(1, 4, 1, 1), t32(4, 2, 2, 2), padding=1),
     ["conv_transpose2d", "(1, 4, 1, 1)", "(4, 2, 2, 2)", "output size (0, 0)"]),
    ("linear rank", lambda: F.linear(t32(2, 3, 4), t32(5, 12)),
     ["linear", "rank 2", "(2, 3, 4)"]),
    ("linear features", lambda: F.linear(t32(2, 12), t32(5, 10)),
     ["linear", "(2, 12)", "(5, 10)"]),
    ("linear mixed dtypes", lambda: F.linear(t32(2, 12), t64(5, 12)),
     ["linear", "float32", "float64"]),
    ("max_pool2d rank", lambda: F.max_pool2d(t32(3, 8, 8), 2),
     ["max_pool2d", "rank 4", "(3, 8, 8)"]),
    ("max_pool2d kernel too large", lambda: F.max_pool2d(t32(1, 3, 2, 2), 3),
     ["max_pool2d", "kernel (3, 3)", "(1, 3, 2, 2)"]),
    ("max_pool2d padding", lambda: F.max_pool2d(t32(1, 3, 8, 8), 2, padding=2),
     ["max_pool2d", "padding (2, 2)", "kernel (2, 2)"]),
    ("local_response_norm rank", lambda: F.local_response_norm(t32(3, 8), 5),
     ["local_response_norm", "rank 4", "(3, 8)"]),
    ("mse_loss shapes", lambda: F.mse_loss(t32(2, 3, 4, 4), t32(2, 3, 4, 5)),
     ["mse_loss", "(2, 3, 4, 4)", "(2, 3, 4, 5)"]),
    ("mse_loss mixed dtypes", lambda: F.mse_loss(t32(2, 3), t64(2, 3)),
     ["mse_loss", "float32", "float64"]),
    ("mse_loss reduction", lambda: F.mse_loss(t32(2, 3), t32(2, 3), "avg"),
     ["mse_loss", "avg"]),
    ("Conv2d module channels", lambda: nn.Conv2d(3, 4, 3)(t32(1, 5, 8, 8)),
     ["conv2d", "(1, 5, 8, 8)", "(4, 3, 3, 3)"]),
    ("Conv2d module groups", lambda: nn.Conv2d(3, 4, 3, groups=2),
     ["Conv2d", "groups=2"]),
    ("Linear module float64 input", lambda: nn.Linear(4, 2)(t64(3, 4)),
     ["linear", "float32", "float64"]),
]


@pytest.mark.parametrize("call,fragments", [(c, f) for _, c, f in BAD_INPUTS], ids=[n for n, _, _ in BAD_INPUTS])
def test_bad_inputs_raise_clear_value_errors(call, fragments):
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"message {message!r} lacks {missing}"


def test_clip_grad_norm_scales_to_the_limit_and_leaves_small_gradients():
    rng = np.random.default_rng(0)
    params = [nn.Parameter(np.zeros((3, 4), np.float32)), nn.Parameter(np.zeros(5, np.float32))]
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    norm = float(np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads)))
    for p, g in zip(params, grads):
        p.grad = g.copy()
    returned = float(nn.optim.clip_grad_norm_(params, norm / 4))
    assert returned == pytest.approx(norm, rel=1e-5)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g / 4, rtol=1e-5)
    for p, g in zip(params, grads):
        p.grad = g.copy()
    nn.optim.clip_grad_norm_(params, norm * 2)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d", "linear"])
def test_gradients_no_one_asked_for_are_not_computed(op, monkeypatch):
    """A first layer's input (features) and a frozen weight get no gradient, and none is computed:
    the gradients that are computed equal those of the full backward."""
    rng = np.random.default_rng(0)
    if op == "linear":
        shapes, call = [(4, 6), (5, 6), (5,)], F.linear
    elif op == "conv2d":
        shapes, call = [(2, 3, 6, 6), (4, 3, 3, 3), (4,)], lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1)
    else:
        shapes, call = [(2, 3, 4, 4), (3, 4, 4, 4), (4,)], \
            lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1)
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    full = [nn.Tensor(v, requires_grad=True) for v in values]
    call(*full).sum().backward()
    for frozen in range(3):
        partial = [nn.Tensor(v, requires_grad=i != frozen) for i, v in enumerate(values)]
        call(*partial).sum().backward()
        for i, (a, b) in enumerate(zip(partial, full)):
            if i == frozen:
                assert a.grad is None
            else:
                np.testing.assert_allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6)


def test_a_first_convolution_does_not_compute_its_input_gradient(monkeypatch):
    from nn.functional import conv

    def refuse(*args, **kwargs):
        raise AssertionError("the input gradient was computed although no one asked for it")

    monkeypatch.setattr(conv, "conv_backward_data", refuse)
    x = nn.Tensor(np.ones((1, 2, 5, 5), np.float32))
    w = nn.Tensor(np.ones((3, 2, 3, 3), np.float32), requires_grad=True)
    F.conv2d(x, w).sum().backward()
    assert w.grad is not None


def test_a_backward_hook_returning_the_wrong_gradient_is_named():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2))
    model[1].register_full_backward_hook(lambda m, gi, go: (gi[0][:, :2],))
    x = nn.Tensor(np.ones((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"backward hook of LeakyReLU: it returned ndarray \(1, 2, 5, 5\) float32 on cpu, "
                                         r"but the grad_input it replaces is \(1, 4, 5, 5\)"):
        model(x).sum().backward()


def test_buffers_are_saved_loaded_and_moved(tmp_path, xp, device):
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)
            self.register_buffer("running_mean", np.zeros(2, np.float32))

        def forward(self, x):
            self.running_mean = self.running_mean * 0.5 + 1.0
            return self.conv(x)

    a = Counter().to(device)
    a(nn.Tensor(xp.ones((1, 2, 3, 3), np.float32)))
    assert nn.device_of(a.running_mean) == device
    assert list(a.state_dict()) == ["conv.weight", "conv.bias", "running_mean"]
    nn.save(a.state_dict(), tmp_path / "c.h5")
    b = Counter()
    b.load_state_dict(nn.load(tmp_path / "c.h5"))
    np.testing.assert_array_equal(b.running_mean, [1.0, 1.0])
    with pytest.raises(ValueError, match="buffer running_mean has shape"):
        b.load_state_dict({**b.state_dict(), "running_mean": np.zeros(3, np.float32)})


def test_layers_start_as_for_a_relu_and_reset_parameters_redraws_for_another_slope():
    """He normal (nn/init.py): std sqrt(2 / (1 + slope^2) / fan_in), slope 0 by default; biases 0."""
    nn.random.seed(0)
    conv, linear = nn.Conv2d(64, 128, 3), nn.Linear(500, 300)
    upconv = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
    for layer, fan_in in ((conv, 64 * 9), (linear, 500), (upconv, 64 * 16 / 4)):
        np.testing.assert_allclose(nn.to_numpy(layer.weight.data).std(), math.sqrt(2 / fan_in), rtol=0.03)
        layer.bias.data[...] = 1
        layer.reset_parameters(negative_slope=1.0)  # no nonlinearity: gain 1
        np.testing.assert_allclose(nn.to_numpy(layer.weight.data).std(), math.sqrt(1 / fan_in), rtol=0.03)
        assert not nn.to_numpy(layer.bias.data).any()


def test_reset_parameters_redraws_in_place_on_the_device(xp):
    layer = nn.Linear(4, 3).to("gpu" if xp is not np else "cpu")
    array, before = layer.weight.data, nn.to_numpy(layer.weight.data).copy()
    layer.reset_parameters(negative_slope=0.2)
    assert layer.weight.data is array and nn.device_of(array) == ("gpu" if xp is not np else "cpu")
    assert not np.array_equal(nn.to_numpy(layer.weight.data), before)


def test_decoder_layers_start_for_their_leaky_relu_and_the_slope_defaults_are_pytorchs():
    nn.random.seed(0)
    decoder = decoders.build("hog", 1.0, 64)
    weight = nn.to_numpy(decoder.convJ1.weight.data)  # 256 -> 256 channels, 3x3
    fan_in = weight.shape[1] * 9
    np.testing.assert_allclose(weight.std(), math.sqrt(2 / 1.04 / fan_in), rtol=0.01)
    assert nn.LeakyReLU().negative_slope == 0.01
    x = nn.Tensor(np.array([-1.0, 2.0], np.float32))
    np.testing.assert_array_equal(F.leaky_relu(x).data, np.array([-0.01, 2.0], np.float32))


def test_no_function_class_shares_a_name_with_a_layer():
    """An op's Function is named <Layer>Function when a layer wraps it (docs/ARCHITECTURE.md)."""
    import importlib
    import inspect
    import pkgutil
    import nn.functional as functional
    functions = set()
    for info in pkgutil.iter_modules(functional.__path__):
        module = importlib.import_module(f"nn.functional.{info.name}")
        functions |= {name for name, value in vars(module).items()
                      if inspect.isclass(value) and issubclass(value, nn.Function) and value is not nn.Function}
    layers = {name for name, value in vars(nn.modules).items() if inspect.isclass(value) and issubclass(value, nn.Module)}
    assert {"Conv2dFunction", "LinearFunction", "LeakyReLUFunction"} <= functions
    assert not functions & layers
