"""Write ``tests/fixtures/nn_reference.npz``: PyTorch's outputs and gradients for the ops of ``nn``.

Run it where torch is installed (the only file of the project that imports torch)::

    python tests/reference/make_nn_fixtures.py            # writes tests/fixtures/nn_reference.npz

``tests/nn/test_nn_reference.py`` then checks ``nn`` against the stored numbers without torch.

Layout: flat keys ``<case>.<name>``, every case listed in ``cases`` (a string array). A case has
``op`` (the op name), its integer/float settings (``stride``, ``padding``, ...), float32 inputs
(``x``, ``w``, ``b``, ``t``), the upstream gradient ``gy`` and torch's results: ``y`` and the
gradients ``gx``, ``gw``, ``gb``, ``gt``. Optimiser cases (``op`` = ``adam``/``sgd``) hold the
initial parameters ``p0``, ``p1``, the gradient of every step ``g0``, ``g1`` (steps first) and the
parameters after every step ``after0``, ``after1`` (steps first). Dropout draws its own masks,
so it has no case.
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as TF

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(TESTS, "fixtures", "nn_reference.npz")

rng = np.random.default_rng(20160516)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def distinct(*shape):
    """No ties (max-pool's argmax is then unambiguous)."""
    n = int(np.prod(shape))
    return ((rng.permutation(n).reshape(shape) - n / 2) / n).astype(np.float32)


def t(a, grad=True):
    return torch.tensor(a, requires_grad=grad)


def grads(*tensors):
    return [None if x is None or x.grad is None else x.grad.numpy().copy() for x in tensors]


class Writer:
    def __init__(self):
        self.arrays, self.cases = {}, []

    def add(self, case, op, **items):
        assert case not in self.cases, case
        self.cases.append(case)
        self.arrays[f"{case}.op"] = np.array(op)
        for name, value in items.items():
            if value is None:
                continue
            value = np.asarray(value)
            if value.dtype == np.float64:
                value = value.astype(np.float32)
            self.arrays[f"{case}.{name}"] = value

    def save(self, path):
        self.arrays["cases"] = np.array(self.cases)
        self.arrays["torch_version"] = np.array(torch.__version__)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.savez_compressed(path, **self.arrays)


def conv_cases(out):
    # (N, C_in, C_out, H, W, k, stride, padding, groups, output_padding for the transposed conv)
    configs = [
        (2, 3, 4, 9, 8, 3, 1, 1, 1, 0),
        (2, 4, 6, 10, 7, 3, 2, 1, 2, 1),
        (1, 6, 4, 8, 8, 4, 2, 1, 2, 0),       # the decoders' upconv shape
        (2, 2, 3, 13, 11, 5, 2, 2, 1, 1),
        (1, 3, 4, 23, 27, 11, 4, 0, 1, 3),    # AlexNet conv1-like (stride 4, remainders)
        (2, 4, 4, 7, 9, 1, 1, 0, 4, 0),
        (1, 2, 2, 6, 10, (3, 5), (1, 2), (1, 2), 1, (0, 1)),
    ]
    for i, (n, ci, co, h, w, k, s, p, g, op) in enumerate(configs):
        kh, kw = (k, k) if isinstance(k, int) else k
        pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
        settings = dict(stride=np.array(pair(s)), padding=np.array(pair(p)), groups=np.array(g))

        x, wt, b = randn(n, ci, h, w), randn(co, ci // g, kh, kw, scale=0.3), randn(co)
        tx, tw, tb = t(x), t(wt), t(b)
        y = TF.conv2d(tx, tw, tb, stride=pair(s), padding=pair(p), groups=g)
        gy = randn(*y.shape)
        y.backward(torch.tensor(gy))
        gx, gw, gb = grads(tx, tw, tb)
        out.add(f"conv2d_{i}", "conv2d", x=x, w=wt, b=b, gy=gy, y=y.detach().numpy(), gx=gx, gw=gw, gb=gb,
                **settings)

        # transposed: weight (C_in, C_out/groups, kH, kW)
        x, wt, b = randn(n, ci, h, w), randn(ci, co // g, kh, kw, scale=0.3), randn(co)
        tx, tw, tb = t(x), t(wt), t(b)
        y = TF.conv_transpose2d(tx, tw, tb, stride=pair(s), padding=pair(p), output_padding=pair(op), groups=g)
        gy = randn(*y.shape)
        y.backward(torch.tensor(gy))
        gx, gw, gb = grads(tx, tw, tb)
        out.add(f"conv_transpose2d_{i}", "conv_transpose2d", x=x, w=wt, b=b, gy=gy, y=y.detach().numpy(), gx=gx,
                gw=gw, gb=gb, output_padding=np.array(pair(op)), **settings)

    # without bias
    x, wt = randn(2, 3, 6, 5), randn(4, 3, 3, 3, scale=0.3)
    tx, tw = t(x), t(wt)
    y = TF.conv2d(tx, tw, None, stride=1, padding=0)
    gy = randn(*y.shape)
    y.backward(torch.tensor(gy))
    gx, gw = grads(tx, tw)
    out.add("conv2d_nobias", "conv2d", x=x, w=wt, gy=gy, y=y.detach().numpy(), gx=gx, gw=gw,
            stride=np.array((1, 1)), padding=np.array((0, 0)), groups=np.array(1))


def sparse_conv_cases(out):
    """nn.functional.sparse_input_conv2d against torch's conv2d, on maps whose pixels are mostly
    zero in every channel (SIFT's keypoint map in small: a 5x5 stride-2 first layer, and others)."""
    for i, (n, ci, co, h, w, k, s, p, density) in enumerate([(2, 7, 4, 16, 16, 5, 2, 2, 0.06),
                                                            (1, 3, 5, 9, 11, 3, 1, 1, 0.2),
                                                            (2, 4, 3, 10, 8, 4, 3, 0, 0.0)]):
        filled = rng.random((n, 1, h, w)) < density
        x = (randn(n, ci, h, w) * filled).astype(np.float32)
        wt, b = randn(co, ci, k, k, scale=0.3), randn(co)
        tx, tw, tb = t(x), t(wt), t(b)
        y = TF.conv2d(tx, tw, tb, stride=s, padding=p)
        gy = randn(*y.shape)
        y.backward(torch.tensor(gy))
        gx, gw, gb = grads(tx, tw, tb)
        out.add(f"sparse_input_conv2d_{i}", "sparse_input_conv2d", x=x, w=wt, b=b, gy=gy, y=y.detach().numpy(),
                gx=gx, gw=gw, gb=gb, stride=np.array((s, s)), padding=np.array((p, p)))


def linear_cases(out):
    for i, (n, fin, fout, bias) in enumerate([(4, 12, 5, True), (1, 7, 3, False), (8, 64, 16, True)]):
        x, wt, b = randn(n, fin), randn(fout, fin, scale=0.3), randn(fout) if bias else None
        tx, tw, tb = t(x), t(wt), (t(b) if bias else None)
        y = TF.linear(tx, tw, tb)
        gy = randn(*y.shape)
        y.backward(torch.tensor(gy))
        gx, gw, gb = grads(tx, tw, tb)
        out.add(f"linear_{i}", "linear", x=x, w=wt, b=b, gy=gy, y=y.detach().numpy(), gx=gx, gw=gw, gb=gb)


def activation_cases(out):
    for name, slope in [("relu", 0.0), ("leaky_relu", 0.2)]:
        x = randn(2, 3, 5, 4)
        tx = t(x)
        y = TF.relu(tx) if slope == 0.0 else TF.leaky_relu(tx, slope)
        gy = randn(*y.shape)
        y.backward(torch.tensor(gy))
        out.add(name, name, x=x, gy=gy, y=y.detach().numpy(), gx=grads(tx)[0], negative_slope=np.array(slope))


def pool_cases(out):
    configs = [((2, 3, 8, 8), 2, 2, 0, False), ((2, 2, 13, 13), 3, 2, 0, True), ((1, 2, 14, 11), 3, 2, 0, True),
               ((2, 2, 9, 10), 3, 2, 1, False), ((1, 3, 10, 7), (2, 3), (3, 2), (1, 1), True),
               ((1, 2, 27, 27), 3, 2, 0, False)]
    for i, (shape, k, s, p, ceil) in enumerate(configs):
        pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
        x = distinct(*shape)
        tx = t(x)
        y = TF.max_pool2d(tx, pair(k), pair(s), pair(p), ceil_mode=ceil)
        gy = randn(*y.shape)
        y.backward(torch.tensor(gy))
        out.add(f"max_pool2d_{i}", "max_pool2d", x=x, gy=gy, y=y.detach().numpy(), gx=grads(tx)[0],
                kernel=np.array(pair(k)), stride=np.array(pair(s)), padding=np.array(pair(p)),
                ceil_mode=np.array(ceil))


def lrn_cases(out):
    for i, (size, alpha, beta, k, scale) in enumerate([(5, 1e-4, 0.75, 1.0, 30.0), (3, 0.5, 0.75, 2.0, 1.0),
                                                       (4, 0.3, 0.6, 1.0, 1.0), (5, 1e-4, 0.75, 2.0, 50.0)]):
        x = randn(2, 7, 5, 4, scale=scale)
        tx = t(x)
        y = TF.local_response_norm(tx, size, alpha, beta, k)
        gy = randn(*y.shape)
        y.backward(torch.tensor(gy))
        out.add(f"local_response_norm_{i}", "local_response_norm", x=x, gy=gy, y=y.detach().numpy(),
                gx=grads(tx)[0], size=np.array(size), alpha=np.array(alpha, np.float64),
                beta=np.array(beta, np.float64), k=np.array(k, np.float64))


def loss_cases(out):
    x, target = randn(4, 3, 8, 8), randn(4, 3, 8, 8)
    for reduction in ["paper", "mean", "sum"]:
        tx, tt = t(x), t(target)
        if reduction == "paper":
            y = ((tx - tt) ** 2).sum() / x.shape[0]
        else:
            y = TF.mse_loss(tx, tt, reduction=reduction)
        gy = np.float32(rng.standard_normal())
        y.backward(torch.tensor(gy))
        gx, gt = grads(tx, tt)
        out.add(f"mse_loss_{reduction}", "mse_loss", x=x, t=target, gy=np.array(gy), y=y.detach().numpy(),
                gx=gx, gt=gt, reduction=np.array(reduction))


def shape_cases(out):
    a, b = randn(2, 3, 4, 4), randn(2, 5, 4, 4)
    ta, tb = t(a), t(b)
    y = torch.flatten(torch.cat([ta, tb], dim=1), 1)
    gy = randn(*y.shape)
    y.backward(torch.tensor(gy))
    out.add("concat_flatten", "concat_flatten", x=a, x2=b, gy=gy, y=y.detach().numpy(), gx=grads(ta)[0],
            gx2=grads(tb)[0], axis=np.array(1))


def arithmetic_cases(out):
    for name, exponent in [("abs", 1.0), ("pow", 3.0)]:
        x = randn(3, 5)
        tx = t(x)
        y = torch.abs(tx) if name == "abs" else torch.abs(tx) ** exponent
        gy = randn(*y.shape)
        y.backward(torch.tensor(gy))
        out.add(name, name, x=x, gy=gy, y=y.detach().numpy(), gx=grads(tx)[0], exponent=np.array(exponent))


def optimiser_cases(out, steps=10):
    settings = [
        ("adam_default", "adam", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
        ("adam_decay", "adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
        ("sgd_momentum", "sgd", dict(lr=0.05, momentum=0.9, weight_decay=0.0, nesterov=False)),
        ("sgd_nesterov", "sgd", dict(lr=0.02, momentum=0.9, weight_decay=1e-3, nesterov=True)),
        ("sgd_plain", "sgd", dict(lr=0.1, momentum=0.0, weight_decay=0.0, nesterov=False)),
    ]
    for case, op, hyper in settings:
        p0, p1 = randn(5, 4), randn(3)
        g0, g1 = randn(steps, 5, 4), randn(steps, 3, scale=0.1)
        params = [torch.tensor(p0.copy(), requires_grad=True), torch.tensor(p1.copy(), requires_grad=True)]
        if op == "adam":
            opt = torch.optim.Adam(params, **hyper)
        else:
            opt = torch.optim.SGD(params, dampening=0.0, **hyper)
        after0, after1 = [], []
        for s in range(steps):
            params[0].grad, params[1].grad = torch.tensor(g0[s]), torch.tensor(g1[s])
            opt.step()
            after0.append(params[0].detach().numpy().copy())
            after1.append(params[1].detach().numpy().copy())
        items = {k: np.array(v, np.float64) for k, v in hyper.items() if k != "nesterov"}
        if op == "sgd":
            items["nesterov"] = np.array(hyper["nesterov"])
        out.add(case, op, p0=p0, p1=p1, g0=g0, g1=g1, after0=np.stack(after0), after1=np.stack(after1), **items)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # deterministic summation order
    out = Writer()
    conv_cases(out)
    linear_cases(out)
    activation_cases(out)
    pool_cases(out)
    lrn_cases(out)
    loss_cases(out)
    shape_cases(out)
    arithmetic_cases(out)
    optimiser_cases(out)
    sparse_conv_cases(out)  # last: the cases above keep the numbers they were made with
    out.save(args.out)
    print(f"wrote {args.out}: {len(out.cases)} cases, {os.path.getsize(args.out) / 1e3:.0f} kB, "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
