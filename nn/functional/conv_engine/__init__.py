"""The convolution engine: how nn/functional/conv.py computes what conv_reference.py defines.

conv_reference.py is the whole definition: im2col, one matrix product per group, col2im. This
package computes the same numbers fast, on the CPU and on the GPU, with one code path:

* :mod:`.plan`:   :class:`ConvPlan`, every layout choice in one record (the device's default, or
  the one :func:`planned` forces: the tests run every layout against the reference);
* :mod:`.bands`:  the CPU's im2col, channel-first (C, kH, kW, N, OH, OW): a stride-phase copy of
  the padded image, cut into bands of output rows that stay in the processor's cache;
* :mod:`.gather`: the GPU's im2col in the same layout, one gather with a cached index table, and
  its adjoint col2im;
* :mod:`.gemm`:   the three primitives, forward, data gradient and weight gradient, each one
  GEMM per band on those buffers.

A module per design decision, in the order they depend on each other (plan <- bands, gather <-
gemm), so that each can be read alone; conv.py sees only the names exported here.
"""
from .bands import im2col_cnhw
from .gemm import conv_backward_data, conv_backward_weight, conv_forward_data, conv_forward_data_and_weight_grad
from .plan import ConvPlan, planned

__all__ = ["ConvPlan", "conv_backward_data", "conv_backward_weight", "conv_forward_data",
           "conv_forward_data_and_weight_grad", "im2col_cnhw", "planned"]
