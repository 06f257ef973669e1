"""Numerical gradient checks in float64, as Chainer's ``check_backward``.

For f: inputs -> output and a random upstream gradient gy, backward gives the gradient of the
scalar L(x) = <f(x), gy>. Along a random direction d, the central difference

    (L(x + eps d) - L(x - eps d)) / (2 eps)   ~=   <dL/dx, d>

must agree with the analytical value. This is done for one input at a time (the other inputs held
fixed), so the report names the worst relative error per input. The step can be wrong for the
point whatever the backward: a kink closer than the step (a leaky ReLU's 0 in some unit of a
model) is straddled, and where the loss is large beside its change, rounding dominates. A check
that fails at ``eps`` is therefore repeated at ``eps`` / 10 and ``eps`` * 10 (``RETRY_STEPS``),
and the best agreement counts: a wrong backward disagrees at every step. ``full_jacobian=True`` compares
every entry of dL/dx instead (use it on tiny shapes).
"""
import numpy as np

from .backend import device_of, get_array_module, to_device, unwrap
from .tensor import Tensor


RETRY_STEPS = (0.1, 10.0)  # the other steps, as multiples of eps, of a check that failed at eps


def _relative_error(a, b):
    scale = max(abs(a), abs(b), 1e-8)
    return abs(a - b) / scale


def _jacobian_error(t, analytic, loss, eps):
    """The worst relative error over every element i of ``t``: d loss / d t[i] by central
    differences, (loss(t[i] + eps) - loss(t[i] - eps)) / 2 eps, against the analytic gradient's
    element i. One pair of forward passes per element: for tiny shapes."""
    flat, expected, errors = t.data.reshape(-1), analytic.reshape(-1), []  # flat: a view, writing it changes t
    for i in range(flat.size):
        saved = flat[i].copy()
        flat[i] = saved + eps
        up = loss()
        flat[i] = saved - eps
        down = loss()
        flat[i] = saved
        errors.append(_relative_error((up - down) / (2 * eps), float(expected[i])))
    return max(errors, default=0.0)


def _directional_error(t, analytic, loss, eps, rtol, rng):
    """The relative error of the derivative along one random direction d (as Chainer's
    check_backward): (loss(t + h d) - loss(t - h d)) / 2h against <analytic gradient, d>. An error
    above ``rtol`` is retried with the steps ``eps * RETRY_STEPS`` (rounding at a too small step,
    curvature at a too large one) and the smallest error is kept."""
    original = t.data
    direction = to_device(rng.standard_normal(t.shape), device_of(t.data))
    expected = float((analytic * direction).sum())

    def error_at(step):
        t.data = original + step * direction
        up = loss()
        t.data = original - step * direction
        down = loss()
        t.data = original
        return _relative_error((up - down) / (2 * step), expected)

    error = error_at(eps)
    if error > rtol:
        error = min([error] + [error_at(eps * factor) for factor in RETRY_STEPS])
    return error


def _check(fn, tensors, named, eps, rtol, rng, full_jacobian):
    """``{name: worst relative error}`` of every input and parameter (see :func:`gradcheck`)."""
    checked = [(f"input{i}", t) for i, t in enumerate(tensors)] + named
    y = fn(*tensors)
    xp = get_array_module(y.data)
    gy = to_device(rng.standard_normal(y.shape), device_of(y.data))
    for _, t in checked:
        t.grad = None
    y.backward(gy)
    analytic = {name: (t.grad if t.grad is not None else xp.zeros_like(t.data)) for name, t in checked}

    def loss():
        return float((fn(*tensors).data * gy).sum())

    if full_jacobian:
        return {name: _jacobian_error(t, analytic[name], loss, eps) for name, t in checked}
    return {name: _directional_error(t, analytic[name], loss, eps, rtol, rng) for name, t in checked}


def gradcheck(fn, inputs, params=(), eps=1e-6, rtol=1e-5, seed=0, full_jacobian=False, raise_on_failure=True):
    """Check ``fn``'s backward against central differences.

    Args:
        fn: callable taking tensors and returning one tensor (an op, a lambda, or a module).
        inputs: finite arrays (cast to float64) passed to ``fn`` as tensors that require gradients.
        params: a module (its named parameters) or extra tensors ``fn`` uses, checked too: in
            float64 during the check, then left as they were (dtype, values, gradients, and a
            module's buffers).
        eps: finite-difference step.  rtol: the largest relative error accepted.
        full_jacobian: check every element of every gradient (tiny shapes) instead of a random direction.

    Returns:
        ``{name: worst relative error}`` for ``input0``, ``input1``, ... and each parameter's name.
    Raises:
        ValueError for an input holding NaN or inf.
        AssertionError naming the input when an error exceeds ``rtol`` (unless raise_on_failure=False).
    """
    rng = np.random.default_rng(seed)
    for i, x in enumerate(inputs):
        if not bool(get_array_module(x).isfinite(unwrap(x)).all()):
            raise ValueError(f"gradcheck: input{i} holds NaN or infinite values; central differences need "
                             "finite inputs: pass finite values")
    # a contiguous copy: the full Jacobian writes into a flat view of it, and the caller's arrays stay untouched
    tensors = [Tensor(get_array_module(x).array(x, dtype=np.float64), requires_grad=True) for x in inputs]
    named = list(params.named_parameters()) if hasattr(params, "named_parameters") else \
        [(getattr(p, "name", None) or f"param{i}", p) for i, p in enumerate(params)]
    buffers = list(params.buffers()) if hasattr(params, "buffers") else []
    saved = [(p, p.data, p.grad) for _, p in named]
    saved_buffers = [(b, b.copy()) for b in buffers]
    try:
        for _, p in named:
            p.data = p.data.astype(np.float64)
        report = _check(fn, tensors, named, eps, rtol, rng, full_jacobian)
    finally:  # the parameters, their gradients and the buffers (running statistics) as they were
        for p, data, grad in saved:
            p.data, p.grad = data, grad
        for buffer, values in saved_buffers:
            buffer[...] = values
    worst = {k: v for k, v in report.items() if v > rtol}
    if worst and raise_on_failure:
        raise AssertionError(f"gradcheck failed (rtol {rtol}): {worst}")
    return report
