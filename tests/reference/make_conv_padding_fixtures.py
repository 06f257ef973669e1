"""Write ``tests/fixtures/conv_padding_reference.npz``: PyTorch's conv2d with ``padding='same'`` and
``padding='valid'``, outputs and gradients, for odd, even and rectangular kernels.

Run it where torch is installed (tests/test_conv_padding.py then reads the stored numbers)::

    python tests/reference/make_conv_padding_fixtures.py

Layout: flat keys ``<case>.<name>``, every case listed in ``cases``; a case holds ``padding`` (the
string), ``groups``, float32 ``x``, ``w``, ``b``, the upstream gradient ``gy`` and torch's ``y``,
``gx``, ``gw``, ``gb``.
"""
import os

import numpy as np
import torch
import torch.nn.functional as TF

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "conv_padding_reference.npz")

CASES = [  # name, padding, x shape, w shape, groups
    ("same_k3", "same", (2, 3, 6, 7), (4, 3, 3, 3), 1),
    ("same_k4", "same", (2, 3, 6, 7), (4, 3, 4, 4), 1),       # even: the odd row and column at the end
    ("same_k2x5", "same", (1, 4, 5, 6), (6, 2, 2, 5), 2),     # one axis even, one odd; groups
    ("valid_k3", "valid", (2, 3, 6, 7), (4, 3, 3, 3), 1),
]


def main():
    rng = np.random.default_rng(20240601)
    arrays, names = {}, []
    for name, padding, xs, ws, groups in CASES:
        x, w = (rng.standard_normal(s).astype(np.float32) for s in (xs, ws))
        b = rng.standard_normal(ws[0]).astype(np.float32)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        y = TF.conv2d(tx, tw, tb, padding=padding, groups=groups)
        gy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
        y.backward(torch.tensor(gy))
        values = dict(padding=np.array(padding), groups=np.array(groups), x=x, w=w, b=b, gy=gy,
                      y=y.detach().numpy(), gx=tx.grad.numpy(), gw=tw.grad.numpy(), gb=tb.grad.numpy())
        arrays.update({f"{name}.{key}": value for key, value in values.items()})
        names.append(name)
    np.savez_compressed(OUT, cases=np.array(names), **arrays)
    print(f"wrote {OUT}: {len(names)} cases (torch {torch.__version__})")


if __name__ == "__main__":
    main()
