"""03 - The convolution as a matrix product (nn/functional/conv_reference.py).

What it shows: ``im2col_nchw`` lays the 3x3 window under every output pixel out as one column, so
the convolution is one matrix product, weights (C_out, C_in kH kW) @ col (C_in kH kW, OH OW),
and equals ``F.conv2d``. Then the transposed convolution is the convolution's adjoint: for any
x and y, <conv2d(x, w), y> = <x, conv_transpose2d(y, w)>, which is why the backward of one is the
forward of the other.

Look at: im2col.png, left to right: the input, its im2col matrix (one column per output pixel,
one row per (channel, tap)), the weights as a matrix, W @ col reshaped, F.conv2d's output and
their difference (white: zero). The printed inner products agree to float64 rounding.

    python3 docs/tour/03_convolution.py [OUT]
"""
import os

import numpy as np

import nn.functional as F
from _tour import nn, output_folder, picture
from models.display.figures import write_grid
from nn.functional.conv_reference import im2col_nchw

out = output_folder()
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 2, 6, 6))      # N, C_in, H, W
w = rng.standard_normal((3, 2, 3, 3))      # C_out, C_in, kH, kW
stride, padding = 1, 1

col = im2col_nchw(x, (3, 3), (stride, stride), (padding, padding))[0]   # (C_in kH kW, OH OW) = (18, 36)
by_matrix = (w.reshape(3, -1) @ col).reshape(3, 6, 6)                    # one GEMM
by_conv2d = F.conv2d(nn.Tensor(x), nn.Tensor(w), stride=stride, padding=padding).data[0]
print(f"x {x.shape}, w {w.shape} -> im2col matrix {col.shape}: {col.shape[0]} = C_in kH kW rows, "
      f"{col.shape[1]} = OH OW columns")
difference = np.abs(by_matrix - by_conv2d).max()
print(f"W @ im2col(x) equals F.conv2d(x, w): largest difference {difference:.1e}")
assert difference < 1e-12

# The adjoint: <A x, y> = <x, A^T y> for the linear map A = conv2d(., w) (stride 2 to make it non-square).
x = rng.standard_normal((2, 2, 7, 7))
y = rng.standard_normal(F.conv2d(nn.Tensor(x), nn.Tensor(w), stride=2, padding=1).shape)
left = float((F.conv2d(nn.Tensor(x), nn.Tensor(w), stride=2, padding=1).data * y).sum())
right = float((x * F.conv_transpose2d(nn.Tensor(y), nn.Tensor(w), stride=2, padding=1).data).sum())
print(f"<conv2d(x, w), y> = {left:.12f}\n<x, conv_transpose2d(y, w)> = {right:.12f}  (difference {left - right:.1e})")
assert abs(left - right) < 1e-9 * abs(left)

cells = [picture(np.hstack([*x[0, :, :6, :6]])), picture(col), picture(w.reshape(3, -1)),
         picture(np.hstack([*by_matrix])), picture(np.hstack([*by_conv2d])), picture(np.hstack([*(by_matrix - by_conv2d)]))]
write_grid(os.path.join(out, "im2col.png"), [cells],
           ["input x: 2 channels", "im2col(x): 18 x 36", "weights W: 3 x 18", "W @ im2col, 3 maps", "F.conv2d, 3 maps",
            "difference"], title="A convolution is one matrix product: W @ im2col(x) = conv2d(x, W) "
                                 "(blue negative, white 0, red positive)", tile=200)
print("wrote", os.path.join(out, "im2col.png"))
