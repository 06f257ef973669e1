"""``Function``: the base of every differentiable op.

An op subclasses ``Function`` and implements two methods on raw arrays (NumPy or CuPy):

* ``forward(*xs) -> y`` (or a tuple of outputs), keeping on ``self`` what backward needs;
* ``backward(*gys) -> gx`` (or a tuple, one per input; None where no gradient flows): given
  dL/dy for every output, return dL/dx for every input — the vector-Jacobian product.
  ``self.needs_input_grad`` (a bool per input, as in PyTorch) lets it skip gradients that no
  one asked for (a first layer's input gradient, a loss's target).

Calling the op on tensors runs ``forward`` and, when gradients are wanted, links the outputs
to the op so that ``Tensor.backward`` can find it.
"""
import weakref

from .tensor import Tensor, as_tensor, is_grad_enabled


class Function:
    """One application of an op: holds its inputs, weak references to its outputs, saved state."""

    generation = 0
    inputs = ()
    outputs = ()
    output_specs = ()
    released = False  # True once release() has freed what backward needs

    def __call__(self, *inputs):
        inputs = [as_tensor(x) for x in inputs]
        self.needs_input_grad = tuple(x.requires_grad for x in inputs)
        ys = self.forward(*[x.data for x in inputs])
        single = not isinstance(ys, tuple)
        outputs = [Tensor(y) for y in ((ys,) if single else ys)]
        if is_grad_enabled() and any(x.requires_grad for x in inputs):
            self.generation = max(x.generation for x in inputs)
            self.inputs = inputs
            self.outputs = [weakref.ref(y) for y in outputs]
            self.output_specs = [(y.shape, y.dtype) for y in outputs]
            for y in outputs:
                y.requires_grad = True
                y.creator = self
                y.generation = self.generation + 1
        else:
            self.release()
        return outputs[0] if single else tuple(outputs)

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    def release(self):
        """Drop the inputs and everything saved for backward (the graph is freed)."""
        self.__dict__.clear()
        self.released = True
