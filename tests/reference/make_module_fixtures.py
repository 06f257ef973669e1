"""Write ``tests/fixtures/module_reference.npz``: PyTorch's values for the layers, losses,
optimisers and learning-rate schedules of ``nn`` that ``tests/test_module_habits.py`` and
``tests/test_optim_habits.py`` compare with (they load the stored numbers, never torch)::

    python tests/reference/make_module_fixtures.py

Keys (all float64 unless said):
  ``bn.x``, ``bn.weight``, ``bn.bias``, ``bn.running_mean``, ``bn.running_var`` (the start),
  ``bn.gy``; train mode: ``bn.train.y``, ``bn.train.gx``, ``bn.train.gweight``, ``bn.train.gbias``,
  ``bn.train.running_mean``, ``bn.train.running_var`` (after the step), ``bn.train.num_batches_tracked``;
  eval mode (from the start statistics): ``bn.eval.y``, ``bn.eval.gx``, ``bn.eval.gweight``, ``bn.eval.gbias``.
  ``loss.x``, ``loss.t``; ``loss.<mse|l1>.<mean|sum|none>.y`` and ``.gx`` (upstream ``loss.gy_none``
  for 'none', 1 otherwise); ``act.x``, ``act.<tanh|sigmoid>.y``.
  ``sched.<name>``: (steps + 1, 2) the lr of both groups after construction and after each step
  (two groups: lr 1.0 and 0.1); ``sched.plateau.metrics`` the values passed to ReduceLROnPlateau.
  ``optim.<adam|sgd>.p<i>`` (start), ``optim.grad<i>`` (steps, ...), ``optim.<adam|sgd>.after<i>``
  (steps, ...): two parameters, each in its own group. ``settings``: JSON of OPTIMISERS, the
  schedulers' options (LambdaLR's function is 1 / (epoch + 1)) and PLATEAU.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as TF

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(HERE, "fixtures", "module_reference.npz")
STEPS = 10
OPTIM_STEPS = 5
PLATEAU_METRICS = [5.0, 4.0, 4.0, 4.0, 4.0, 3.99, 3.99, 3.0, 3.0, 3.0, 3.0, 3.0]

# (group 0 options, group 1 options, defaults): shared with the tests
OPTIMISERS = {
    "adam": (dict(lr=0.1, weight_decay=0.01), dict(lr=0.01, betas=(0.8, 0.99)), dict(lr=0.05, eps=1e-6)),
    "sgd": (dict(lr=0.1, momentum=0.9, dampening=0.1), dict(lr=0.05, momentum=0.5, nesterov=True),
            dict(lr=0.01, weight_decay=0.001)),
}
SCHEDULERS = {
    "step": ("StepLR", dict(step_size=3, gamma=0.5)),
    "multistep": ("MultiStepLR", dict(milestones=[2, 5, 5], gamma=0.3)),
    "exponential": ("ExponentialLR", dict(gamma=0.9)),
    "cosine": ("CosineAnnealingLR", dict(T_max=4, eta_min=0.05)),
    "lambda": ("LambdaLR", dict(lr_lambda=lambda epoch: 1.0 / (epoch + 1))),
}
PLATEAU = dict(mode="min", factor=0.5, patience=1, threshold=0.01, cooldown=1, min_lr=[0.2, 0.01])


def main():
    rng = np.random.default_rng(20160517)
    out = {}

    def tensor(a):
        return torch.tensor(a, dtype=torch.float64, requires_grad=True)

    # BatchNorm2d: one training step, and eval mode from the starting statistics
    x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    mean, var = rng.standard_normal(3) * 0.1, rng.random(3) + 0.5
    gy = rng.standard_normal(x.shape)
    out.update({"bn.x": x, "bn.weight": weight, "bn.bias": bias, "bn.running_mean": mean, "bn.running_var": var,
                "bn.gy": gy})
    for mode in ("train", "eval"):
        bn = torch.nn.BatchNorm2d(3).double()
        with torch.no_grad():
            bn.weight.copy_(torch.tensor(weight)), bn.bias.copy_(torch.tensor(bias))
            bn.running_mean.copy_(torch.tensor(mean)), bn.running_var.copy_(torch.tensor(var))
        bn.train(mode == "train")
        xt = tensor(x)
        y = bn(xt)
        y.backward(torch.tensor(gy))
        out.update({f"bn.{mode}.y": y.detach().numpy(), f"bn.{mode}.gx": xt.grad.numpy(),
                    f"bn.{mode}.gweight": bn.weight.grad.numpy(), f"bn.{mode}.gbias": bn.bias.grad.numpy()})
        if mode == "train":
            out.update({"bn.train.running_mean": bn.running_mean.numpy(), "bn.train.running_var": bn.running_var.numpy(),
                        "bn.train.num_batches_tracked": bn.num_batches_tracked.numpy()})

    # losses
    x, t = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    gy_none = rng.standard_normal(x.shape)
    out.update({"loss.x": x, "loss.t": t, "loss.gy_none": gy_none})
    for name, fn in (("mse", TF.mse_loss), ("l1", TF.l1_loss)):
        for reduction in ("mean", "sum", "none"):
            xt = tensor(x)
            y = fn(xt, torch.tensor(t), reduction=reduction)
            y.backward(torch.tensor(gy_none) if reduction == "none" else None)
            out[f"loss.{name}.{reduction}.y"] = y.detach().numpy()
            out[f"loss.{name}.{reduction}.gx"] = xt.grad.numpy()

    # activations
    x = rng.standard_normal(20) * 5
    out["act.x"] = x
    out["act.tanh.y"], out["act.sigmoid.y"] = torch.tanh(torch.tensor(x)).numpy(), torch.sigmoid(torch.tensor(x)).numpy()

    # schedulers on two parameter groups
    def two_groups():
        return torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": 1.0},
                                {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1}])
    for key, (name, options) in SCHEDULERS.items():
        opt = two_groups()
        sched = getattr(torch.optim.lr_scheduler, name)(opt, **options)
        lrs = [sched.get_last_lr()]
        for _ in range(STEPS):
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr())
        out[f"sched.{key}"] = np.array(lrs)
    opt = two_groups()
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **PLATEAU)
    lrs = [sched.get_last_lr()]
    for value in PLATEAU_METRICS:
        sched.step(value)
        lrs.append(sched.get_last_lr())
    out["sched.plateau"], out["sched.plateau.metrics"] = np.array(lrs), np.array(PLATEAU_METRICS)

    # optimisers: two parameters in two groups, fixed gradients
    starts = [rng.standard_normal(3), rng.standard_normal((2, 2))]
    grads = [rng.standard_normal((OPTIM_STEPS,) + s.shape) for s in starts]
    for i in range(2):
        out[f"optim.grad{i}"] = grads[i]
    for name, (group0, group1, defaults) in OPTIMISERS.items():
        params = [torch.tensor(s, requires_grad=True) for s in starts]
        cls = torch.optim.Adam if name == "adam" else torch.optim.SGD
        opt = cls([dict(params=[params[0]], **group0), dict(params=[params[1]], **group1)], **defaults)
        after = [[], []]
        for step in range(OPTIM_STEPS):
            for i, p in enumerate(params):
                p.grad = torch.tensor(grads[i][step])
            opt.step()
            for i, p in enumerate(params):
                after[i].append(p.detach().numpy().copy())
        for i in range(2):
            out[f"optim.{name}.p{i}"], out[f"optim.{name}.after{i}"] = starts[i], np.array(after[i])

    out["settings"] = np.array(json.dumps({
        "optimisers": OPTIMISERS, "plateau": PLATEAU,
        "schedulers": {key: [name, {k: v for k, v in options.items() if k != "lr_lambda"}]
                       for key, (name, options) in SCHEDULERS.items()}}))
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, {len(out)} arrays)")


if __name__ == "__main__":
    main()
