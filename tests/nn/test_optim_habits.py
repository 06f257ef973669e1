"""nn.optim as PyTorch users expect it: parameter groups, state dicts, zero_grad, and the
schedules of nn.optim.lr_scheduler, against PyTorch's values (tests/reference/make_module_fixtures.py)."""
import json
import os

import numpy as np
import pytest

import nn
from nn.optim import lr_scheduler

REF = np.load(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "module_reference.npz"))
SETTINGS = json.loads(str(REF["settings"]))


def optimiser(name, params):
    """The fixture's optimiser: one parameter per group, each group with its own options."""
    group0, group1, defaults = SETTINGS["optimisers"][name]
    cls = nn.optim.Adam if name == "adam" else nn.optim.SGD
    if "betas" in group1:
        group1 = dict(group1, betas=tuple(group1["betas"]))
    return cls([dict(params=[params[0]], **group0), dict(params=[params[1]], **group1)], **defaults)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_two_param_groups_follow_pytorch(xp, name):
    params = [nn.Parameter(xp.asarray(REF[f"optim.{name}.p{i}"])) for i in range(2)]
    opt = optimiser(name, params)
    assert [g["lr"] for g in opt.param_groups] == [SETTINGS["optimisers"][name][i]["lr"] for i in range(2)]
    for step in range(REF["optim.grad0"].shape[0]):
        for i, p in enumerate(params):
            p.grad = xp.asarray(REF[f"optim.grad{i}"][step])
        opt.step()
        for i, p in enumerate(params):
            np.testing.assert_allclose(nn.to_numpy(p.data), REF[f"optim.{name}.after{i}"][step], rtol=1e-10,
                                       atol=1e-12, err_msg=f"{name} step {step} parameter {i}")


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_state_dict_has_pytorchs_structure_and_resumes(xp, name):
    start = [nn.Parameter(xp.asarray(REF[f"optim.{name}.p{i}"])) for i in range(2)]
    opt = optimiser(name, start)

    def run(optimizer, params, steps):
        for step in steps:
            for i, p in enumerate(params):
                p.grad = xp.asarray(REF[f"optim.grad{i}"][step])
            optimizer.step()

    run(opt, start, range(2))
    state = opt.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0], [1]]
    assert state["param_groups"][1]["lr"] == SETTINGS["optimisers"][name][1]["lr"]
    names = {"adam": {"step", "exp_avg", "exp_avg_sq"}, "sgd": {"momentum_buffer"}}[name]
    assert set(state["state"]) == {0, 1} and set(state["state"][0]) == names
    copy = {"state": {i: {k: nn.to_numpy(v).copy() if hasattr(v, "shape") else v for k, v in s.items()}
                      for i, s in state["state"].items()},
            "param_groups": json.loads(json.dumps(state["param_groups"]))}  # as a file would hold them
    resumed = [nn.Parameter(p.data.copy()) for p in start]
    other = type(opt)([{"params": [resumed[0]], "lr": 9.0}, {"params": [resumed[1]]}], lr=9.0)
    other.load_state_dict(copy)
    assert other.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    run(opt, start, range(2, 5))
    run(other, resumed, range(2, 5))
    for a, b in zip(start, resumed):
        np.testing.assert_array_equal(nn.to_numpy(a.data), nn.to_numpy(b.data))
    with pytest.raises(ValueError, match="groups"):
        type(opt)([p for p in resumed], lr=0.1).load_state_dict(copy)


def test_zero_grad_set_to_none_or_zeros(xp):
    p = nn.Parameter(xp.ones(3, np.float32))
    opt = nn.optim.SGD([p], lr=0.1)
    p.grad = xp.full(3, 2.0, np.float32)
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and float(nn.to_numpy(grad).max()) == 0.0
    opt.zero_grad()
    assert p.grad is None


def test_param_group_errors():
    p, q = nn.Parameter(np.zeros(2, np.float32)), nn.Parameter(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="more than one parameter group"):
        nn.optim.SGD([{"params": [p]}, {"params": [p, q]}])
    with pytest.raises(ValueError, match="invalid learning rate"):
        nn.optim.Adam([{"params": [p], "lr": -1.0}])
    opt = nn.optim.Adam([p], lr=0.5)
    opt.add_param_group({"params": q, "lr": 0.1})
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1] and opt.param_groups[1]["betas"] == (0.9, 0.999)


def two_groups():
    return nn.optim.SGD([{"params": [nn.Parameter(np.zeros(1, np.float32))], "lr": 1.0},
                         {"params": [nn.Parameter(np.zeros(1, np.float32))], "lr": 0.1}])


def make_scheduler(key, optimizer):
    name, options = SETTINGS["schedulers"][key]
    if name == "LambdaLR":
        options = dict(lr_lambda=lambda epoch: 1.0 / (epoch + 1))
    return getattr(lr_scheduler, name)(optimizer, **options)


@pytest.mark.parametrize("key", ["step", "multistep", "exponential", "cosine", "lambda"])
def test_schedulers_follow_pytorch_on_every_group(key):
    opt = two_groups()
    sched = make_scheduler(key, opt)
    lrs = [sched.get_last_lr()]
    for _ in range(REF[f"sched.{key}"].shape[0] - 1):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == lrs[-1]
    np.testing.assert_allclose(lrs, REF[f"sched.{key}"], rtol=1e-12)

    # restored from its state_dict (through JSON, as a checkpoint holds it), it goes on alike
    steps = 4
    first, second = two_groups(), two_groups()
    a = make_scheduler(key, first)
    for _ in range(steps):
        a.step()
    b = make_scheduler(key, second)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    a.step(), b.step()
    assert b.get_last_lr() == a.get_last_lr()
    np.testing.assert_allclose(b.get_last_lr(), REF[f"sched.{key}"][steps + 1], rtol=1e-12)


def test_reduce_lr_on_plateau_follows_pytorch():
    options = dict(SETTINGS["plateau"])
    opt = two_groups()
    sched = lr_scheduler.ReduceLROnPlateau(opt, **options)
    lrs = [sched.get_last_lr()]
    for value in REF["sched.plateau.metrics"]:
        sched.step(float(value))
        lrs.append(sched.get_last_lr())
    np.testing.assert_allclose(lrs, REF["sched.plateau"], rtol=1e-12)
    assert len(set(map(tuple, lrs))) > 2  # the sequence does reduce, more than once
    restored = lr_scheduler.ReduceLROnPlateau(two_groups(), **options)
    restored.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    assert restored.best == sched.best and restored.num_bad_epochs == sched.num_bad_epochs


def test_old_names_still_import():
    assert nn.optim.StepLR is lr_scheduler.StepLR and nn.optim.CosineAnnealingLR is lr_scheduler.CosineAnnealingLR
    assert nn.optim.ReduceLROnPlateau is lr_scheduler.ReduceLROnPlateau
