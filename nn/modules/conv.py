"""Convolution layers holding their weights in PyTorch/Caffe layouts."""
from .. import functional as F
from ..functional.conv import resolve_padding
from ..functional.validation import check_positive, pair
from .module import WeightedLayer


def _conv_repr(in_channels, out_channels, kernel, stride, padding, groups, bias, output_padding=0):
    """PyTorch's text: pairs for kernel, stride and padding ('same'/'valid' as words); padding,
    output_padding, groups and bias only where they are not the default."""
    text = f"{in_channels}, {out_channels}, kernel_size={kernel}, stride={pair(stride, 'stride')}"
    if isinstance(padding, str):
        text += f", padding={padding}"
    elif pair(padding, "padding") != (0, 0):
        text += f", padding={pair(padding, 'padding')}"
    if pair(output_padding, "output_padding") != (0, 0):
        text += f", output_padding={pair(output_padding, 'output_padding')}"
    return text + (f", groups={groups}" if groups != 1 else "") + ("" if bias else ", bias=False")


class Conv2d(WeightedLayer):
    """weight (C_out, C_in/groups, kH, kW), bias (C_out,); see :func:`nn.functional.conv2d`.
    ``padding``: an int, a pair, ``"valid"`` or ``"same"`` (stride 1), checked here."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, bias=True):
        kh, kw = pair(kernel_size, "Conv2d: kernel_size")
        check_positive("Conv2d", in_channels=in_channels, out_channels=out_channels, groups=groups, kernel_size=min(kh, kw))
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: channels {in_channels} -> {out_channels} not divisible by groups={groups}")
        resolve_padding(type(self).__name__, padding, (kh, kw), pair(stride, "Conv2d: stride"))
        super().__init__((out_channels, in_channels // groups, kh, kw), in_channels // groups * kh * kw,
                         out_channels if bias else None)
        self.stride, self.padding, self.groups = stride, padding, groups

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.groups)

    def extra_repr(self):
        o, i, kh, kw = self.weight.shape
        return _conv_repr(i * self.groups, o, (kh, kw), self.stride, self.padding, self.groups, self.bias is not None)


class SparseInputConv2d(Conv2d):
    """Conv2d (groups 1) for an input whose pixels are mostly zero in every channel, such as SIFT's
    keypoint map: the same weights and results, computed from the non-zero pixels only; see
    :func:`nn.functional.sparse_input_conv2d`."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x):
        return F.sparse_input_conv2d(x, self.weight, self.bias, self.stride, self.padding)


class ConvTranspose2d(WeightedLayer):
    """weight (C_in, C_out/groups, kH, kW), bias (C_out,); see :func:`nn.functional.conv_transpose2d`."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True):
        kh, kw = pair(kernel_size, "ConvTranspose2d: kernel_size")
        sh, sw = pair(stride, "ConvTranspose2d: stride")
        check_positive("ConvTranspose2d", in_channels=in_channels, out_channels=out_channels, groups=groups,
                       kernel_size=min(kh, kw), stride=min(sh, sw))
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"ConvTranspose2d: channels {in_channels} -> {out_channels} "
                             f"not divisible by groups={groups}")
        fan_in = max(1.0, in_channels // groups * kh * kw / (sh * sw))
        super().__init__((in_channels, out_channels // groups, kh, kw), fan_in, out_channels if bias else None)
        self.stride, self.padding, self.output_padding, self.groups = stride, padding, output_padding, groups

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups)

    def extra_repr(self):
        i, o, kh, kw = self.weight.shape
        return _conv_repr(i, o * self.groups, (kh, kw), self.stride, self.padding, self.groups,
                          self.bias is not None, self.output_padding)
