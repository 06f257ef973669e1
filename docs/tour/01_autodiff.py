"""01 - Reverse-mode autodiff on a small graph.

What it shows: ``loss.backward()`` fills ``x.grad`` and ``w.grad`` with d loss / d x and d loss / d w,
and each entry agrees with a central finite difference (loss(v + h) - loss(v - h)) / 2h. Then the
graph that backward walked is drawn with ``nn.draw_graph``: ellipses are tensors (name, shape,
dtype), grey boxes the ops that made them.

Look at: the two gradient columns agreeing to ~1e-10 (float64), and graph.png, read left to right
as the forward pass; backward runs it right to left.

    python3 docs/tour/01_autodiff.py [OUT]          (OUT: default tour_out/)
"""
import os
import shutil

import numpy as np

from _tour import nn, output_folder

out = output_folder()
x = nn.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True, name="x")  # float64: differences exact enough
w = nn.Tensor(np.array([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]]), requires_grad=True, name="w")


def f(x, w):
    """loss = sum(tanh(x @ w) * exp(x[0])): a matrix product, two element-wise ops, indexing, a sum."""
    h = (x @ w).tanh()
    h.name = "h"
    return (h * x[0].exp()).sum()


loss = f(x, w)
loss.name = "loss"
# Draw before backward: backward frees the graph as it walks it (unless retain_graph=True).
dot_text = nn.to_dot(loss)
if shutil.which("dot"):
    print("graph drawn:", nn.draw_graph(loss, os.path.join(out, "graph.png")))
else:
    print(dot_text)
    print("Graphviz's dot is not installed, so the graph above is DOT text only; "
          "install graphviz (apt-get install graphviz, or brew install graphviz) to draw it.")
loss.backward()

h = 1e-6
print(f"loss = {loss.item():.6f}")
print(f"{'entry':>8} {'backward':>14} {'finite diff.':>14} {'difference':>11}")
worst = 0.0
for name, t in (("x", x), ("w", w)):
    for index in np.ndindex(t.shape):
        up, down = t.data.copy(), t.data.copy()
        up[index] += h
        down[index] -= h
        args_up = (nn.Tensor(up), w) if name == "x" else (x, nn.Tensor(up))
        args_down = (nn.Tensor(down), w) if name == "x" else (x, nn.Tensor(down))
        numeric = (f(*args_up).item() - f(*args_down).item()) / (2 * h)
        worst = max(worst, abs(numeric - t.grad[index]))
        print(f"{name + str(list(index)):>8} {t.grad[index]:14.8f} {numeric:14.8f} {numeric - t.grad[index]:11.1e}")
print(f"largest difference between backward and finite differences: {worst:.1e}")
assert worst < 1e-6, "backward disagrees with the finite differences"
