"""``Tensor``: an array that remembers how it was made, and reverse-mode differentiation.

A define-by-run graph: every op applied to tensors that require gradients records itself as the
``creator`` of its outputs. ``Tensor.backward()`` walks that graph from the output back to the
leaves in reverse topological order (largest ``generation`` first), calls each op's ``backward``
once all gradients of its outputs are in, and sums the gradients of tensors used more than once.
Unless ``retain_graph=True`` the graph is freed as it is walked, so the memory held for backward
(im2col buffers, masks) is released as early as possible.
"""
import contextlib
import heapq
import itertools

import numpy as np

from .backend import device_of, get_array_module, to_device, unwrap


class _GradMode:
    enabled = True


@contextlib.contextmanager
def no_grad():
    """Inside this block no graph is recorded (frozen encoders, evaluation)."""
    previous, _GradMode.enabled = _GradMode.enabled, False
    try:
        yield
    finally:
        _GradMode.enabled = previous


def is_grad_enabled():
    return _GradMode.enabled


class Tensor:
    """An array (NumPy or CuPy) with an optional gradient.

    Attributes:
        data: the array, any shape.
        grad: the gradient of the last ``backward`` with respect to ``data`` (same shape), or None.
        requires_grad: whether ops on this tensor are recorded for backward.
        creator: the op that produced this tensor (None for leaves).
        generation: 1 + the creator's generation; orders the backward walk.
    """

    __array_priority__ = 200  # numpy scalars/arrays on the left defer to our operators

    def __init__(self, data, requires_grad=False, name=None):
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "shape"):
            data = np.asarray(data, dtype=np.float32)
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self.creator = None
        self.generation = 0
        self.name = name
        self._retain_grad = False
        self._hooks = {}

    # --- array-like properties -------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: device_of(self.data))

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, device={self.device}{grad})"

    def numpy(self):
        """The values as a NumPy array (copied from the GPU if needed)."""
        return to_device(self.data, "cpu")

    def item(self):
        return float(self.numpy().reshape(-1)[0]) if self.size == 1 else self._not_scalar("item")

    def _not_scalar(self, what):
        raise ValueError(f"Tensor.{what}: expected a tensor with one element, got shape {self.shape}")

    def detach(self):
        """The same data (shared, as PyTorch), cut from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place and return this tensor (only a leaf can stop requiring it)."""
        if not requires_grad and self.creator is not None:
            raise RuntimeError("Tensor.requires_grad_(False): only a leaf can stop requiring gradients; "
                               "use .detach() for a copy cut from the graph")
        self.requires_grad = requires_grad
        return self

    def register_hook(self, hook):
        """Call ``hook(grad)`` each time this tensor's gradient is computed in a backward pass.

        ``grad`` is the summed gradient of this pass (an array); a hook may return a replacement,
        which then flows on (and, on a leaf, is what accumulates into ``.grad``). Hooks run in the
        order registered. Returns a handle whose ``remove()`` unregisters the hook, as PyTorch's.
        """
        if not self.requires_grad:
            raise RuntimeError("Tensor.register_hook: this tensor does not require gradients; "
                               "call .requires_grad_() first")
        key = next(_hook_keys)
        self._hooks[key] = hook
        return RemovableHandle(self._hooks, key)

    def _apply_hooks(self, grad):
        for hook in list(self._hooks.values()):
            replaced = hook(grad)
            if replaced is None:
                continue
            replaced = get_array_module(grad).asarray(unwrap(replaced) if isinstance(replaced, Tensor) else replaced,
                                                      dtype=grad.dtype)
            if replaced.shape != grad.shape:
                raise ValueError(f"Tensor.register_hook: a hook returned shape {replaced.shape} for a gradient "
                                 f"of shape {grad.shape}")
            grad = replaced
        return grad

    def retain_grad(self):
        """Keep ``grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        self._retain_grad = True
        return self

    def zero_grad(self):
        self.grad = None

    # --- the backward walk -----------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        Args:
            grad: the upstream gradient, same shape as ``self``; ones when ``self`` is a scalar.
            retain_graph: keep the graph (and what ops saved for backward) for another call.
        """
        if grad is None:
            if self.size != 1:
                raise ValueError("Tensor.backward: grad can be omitted only for a scalar output, "
                                 f"got shape {self.shape}")
            grad = get_array_module(self.data).ones_like(self.data)
        grad = unwrap(grad)
        if grad.shape != self.shape:
            raise ValueError(f"Tensor.backward: grad has shape {grad.shape}, expected {self.shape}")
        grad = self._apply_hooks(grad)
        self.grad = grad if self.grad is None else self.grad + grad
        if self.creator is not None:
            _BackwardPass(self, grad, retain_graph).run()

    # Operators (+, -, *, /, **, @, [], <, >) and PyTorch-named methods (sum, mean, max, view,
    # flatten, T, exp, ...) are installed on Tensor by nn/functional/operators.py, where the ops
    # live: this file imports none of them.

    def to(self, device):
        """A leaf copy of this tensor on ``device`` (keeps ``requires_grad``)."""
        return Tensor(to_device(self.data, device), requires_grad=self.requires_grad, name=self.name)


_hook_keys = itertools.count()


class RemovableHandle:
    """Returned by ``Tensor.register_hook`` and a module's ``register_*_hook`` (PyTorch's
    ``RemovableHandle``); ``remove()`` unregisters the hook."""

    def __init__(self, hooks, key):
        self.hooks, self.key = hooks, key

    def remove(self):
        self.hooks.pop(self.key, None)


class _BackwardPass:
    """One call of ``Tensor.backward``, in two concerns:

    * ordering: the ops are taken from a heap by decreasing generation, so that each op runs after
      every op that consumes its outputs (ties in first-seen order);
    * accumulation: gradients flowing into a tensor from several consumers are summed in
      ``grads`` (this pass's gradients of non-leaf tensors, by id: a retained or earlier ``.grad``
      is never sent back again) until its creator's turn; leaves accumulate into ``.grad``.

    Ops hold their outputs weakly; tensors waiting for their creator's turn are kept alive in
    ``waiting``. Without ``retain_graph``, each op releases what it saved right after its backward.
    """

    def __init__(self, root, grad, retain_graph):
        self.root, self.retain_graph = root, retain_graph
        self.xp = get_array_module(root.data)
        self.grads, self.waiting = {id(root): grad}, {id(root): root}
        self.heap, self.seen, self.order = [], set(), itertools.count()
        self.hooked_leaves = {}  # id -> (leaf with hooks, its gradient summed over this pass)
        self.schedule(root.creator)

    def schedule(self, fn):
        if id(fn) not in self.seen:
            self.seen.add(id(fn))
            heapq.heappush(self.heap, (-fn.generation, next(self.order), fn))

    def run(self):
        self.walk()
        for leaf, grad in self.hooked_leaves.values():  # every consumer has run: the sum is complete
            grad = leaf._apply_hooks(grad)
            leaf.grad = grad if leaf.grad is None else leaf.grad + grad

    def walk(self):
        while self.heap:
            fn = heapq.heappop(self.heap)[2]
            if fn.released:
                raise RuntimeError("Tensor.backward: this part of the graph was already freed by an "
                                   "earlier backward; pass retain_graph=True to the first call")
            outputs = [ref() for ref in fn.outputs]
            grads_in = fn.backward(*self.output_grads(fn, outputs))
            for out in outputs:
                if out is not None:
                    self.waiting.pop(id(out), None)
            self.accumulate(fn, grads_in if isinstance(grads_in, tuple) else (grads_in,))
            if not self.retain_graph:
                fn.release()

    def output_grads(self, fn, outputs):
        """The summed gradient of each of ``fn``'s outputs (zeros where none flowed)."""
        grads = [self.grads.pop(id(o), None) if o is not None else None for o in outputs]
        grads = [out._apply_hooks(g) if g is not None and out is not None and out._hooks and out is not self.root
                 else g for out, g in zip(outputs, grads)]
        for out, g in zip(outputs, grads):
            if out is not None and out is not self.root and out._retain_grad and g is not None:
                out.grad = g if out.grad is None else out.grad + g
        return [g if g is not None else self.xp.zeros(shape, dtype) for g, (shape, dtype) in zip(grads, fn.output_specs)]

    def accumulate(self, fn, grads_in):
        for x, gx in zip(fn.inputs, grads_in):
            if gx is None or not x.requires_grad:
                continue
            if x.creator is None and x._hooks:  # hooks see the pass's summed gradient, at the end
                previous = self.hooked_leaves.get(id(x), (x, None))[1]
                self.hooked_leaves[id(x)] = (x, gx if previous is None else previous + gx)
                continue
            if x.creator is None:  # a leaf: accumulate into .grad
                x.grad = gx if x.grad is None else x.grad + gx
                continue
            previous = self.grads.get(id(x))
            self.grads[id(x)] = gx if previous is None else previous + gx
            self.waiting[id(x)] = x
            self.schedule(x.creator)


def as_tensor(x):
    """``x`` if it is a Tensor, else a constant Tensor wrapping it."""
    return x if isinstance(x, Tensor) else Tensor(x)
