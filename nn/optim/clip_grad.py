"""Gradient clipping by the joint norm (``torch.nn.utils.clip_grad_norm_``)."""
from ..backend import get_array_module
from ..fused import scale_in_place, sum_of_squares


def clip_grad_norm_(parameters, max_norm):
    """Scale the gradients of ``parameters`` in place so that their joint L2 norm is at most
    ``max_norm`` (as ``torch.nn.utils.clip_grad_norm_``); returns the norm before clipping
    (an array on the parameters' device: reading it is the caller's choice).

        total = sqrt(sum_p ||g_p||^2),   g_p <- g_p * min(1, max_norm / (total + 1e-6))

    A rare huge gradient (a batch the decoder has never seen the like of) then moves the weights
    by a bounded step instead of throwing Adam's moments, and the run, off course.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    xp = get_array_module(grads[0])
    total = xp.sqrt(xp.stack([sum_of_squares(g.astype(xp.float32, copy=False)) for g in grads]).sum())
    coefficient = xp.minimum(xp.float32(1.0), xp.float32(max_norm) / (total + xp.float32(1e-6)))
    for g in grads:
        scale_in_place(g, coefficient.astype(g.dtype, copy=False))
    return total
