"""02 - Writing an op: a ``Function`` with forward and backward, checked by ``nn.gradcheck``.

What it shows: softplus(x) = log(1 + exp(x)) written as an op. ``forward`` gets raw arrays and
keeps what backward needs; ``backward`` gets dL/dy and returns dL/dx = dL/dy * sigmoid(x) (the
vector-Jacobian product). ``nn.gradcheck`` compares that with central finite differences in
float64 along a random direction, and catches a backward with a mistake in it.

Look at: the right op's relative error (~1e-10) against the wrong one's (order 1), and the
AssertionError text gradcheck raises, which names the input whose gradient is wrong.

    python3 docs/tour/02_function.py [OUT]
"""
import numpy as np

from _tour import nn, output_folder


class Softplus(nn.Function):
    def forward(self, x):
        xp = nn.get_array_module(x)  # numpy or cupy: one code path for both devices
        self.x = x  # saved for backward
        return xp.logaddexp(0, x)  # log(1 + exp(x)) without overflow for large x

    def backward(self, gy):
        xp = nn.get_array_module(gy)
        return gy / (1 + xp.exp(-self.x))  # d softplus / dx = sigmoid(x), times the upstream gradient


class WrongSoftplus(Softplus):
    def backward(self, gy):
        xp = nn.get_array_module(gy)
        return gy * xp.exp(-self.x) / (1 + xp.exp(-self.x))  # a slip: sigmoid(-x) instead of sigmoid(x)


output_folder()  # nothing to draw here: the numbers say it
x = np.random.default_rng(0).standard_normal((4, 5))
y = Softplus()(nn.Tensor(x, requires_grad=True))
print("forward: softplus of a (4, 5) input ->", y)

# A Function instance records one application (its saved x), so each call makes a new one.
report = nn.gradcheck(lambda t: Softplus()(t), [x])
print(f"Softplus: gradcheck passes, worst relative error {report['input0']:.1e}")
report = nn.gradcheck(lambda t: Softplus()(t), [x[:2, :3]], full_jacobian=True)
print(f"Softplus: full Jacobian (every entry, for tiny inputs) worst relative error {report['input0']:.1e}")

report = nn.gradcheck(lambda t: WrongSoftplus()(t), [x], raise_on_failure=False)
print(f"WrongSoftplus: worst relative error {report['input0']:.2f} -> the backward is wrong")
try:
    nn.gradcheck(lambda t: WrongSoftplus()(t), [x])
except AssertionError as error:
    print("gradcheck raised AssertionError:", error)
