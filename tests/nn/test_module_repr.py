"""Layers print as PyTorch's: the expected strings are what torch 2.13 prints for the same layers."""
import pytest

import nn

CASES = [
    (lambda: nn.Conv2d(3, 8, 3, padding=1), "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"),
    (lambda: nn.Conv2d(3, 8, 3), "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))"),
    (lambda: nn.Conv2d(4, 8, (3, 5), stride=2, padding=(1, 2), groups=2, bias=False),
     "Conv2d(4, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2), groups=2, bias=False)"),
    (lambda: nn.Conv2d(3, 8, 3, padding="same"), "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=same)"),
    (lambda: nn.Conv2d(3, 8, 3, padding="valid"), "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=valid)"),
    (lambda: nn.ConvTranspose2d(8, 3, 4, 2, 1), "ConvTranspose2d(8, 3, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))"),
    (lambda: nn.ConvTranspose2d(8, 4, 3, 2, 1, output_padding=1, groups=2, bias=False),
     "ConvTranspose2d(8, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1), groups=2, "
     "bias=False)"),
    (lambda: nn.Linear(3, 4), "Linear(in_features=3, out_features=4, bias=True)"),
    (lambda: nn.Linear(3, 4, bias=False), "Linear(in_features=3, out_features=4, bias=False)"),
    (lambda: nn.MaxPool2d(2), "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"),
    (lambda: nn.MaxPool2d(3, 2, ceil_mode=True), "MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=True)"),
    (lambda: nn.MaxPool2d(3, 2, 1), "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)"),
    (lambda: nn.LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)"),
    (lambda: nn.Dropout(0.5), "Dropout(p=0.5, inplace=False)"),
    (lambda: nn.Flatten(), "Flatten(start_dim=1, end_dim=-1)"),
    (lambda: nn.LocalResponseNorm(5), "LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=1.0)"),
    (lambda: nn.ReLU(), "ReLU()"),
    (lambda: nn.Tanh(), "Tanh()"),
    (lambda: nn.Identity(), "Identity()"),
    (lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()),
     "Sequential(\n  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n  (1): ReLU()\n)"),
]


@pytest.mark.parametrize("make, expected", CASES, ids=[text.split("\n")[0] for _, text in CASES])
def test_repr_is_the_one_pytorch_prints(make, expected):
    assert repr(make()) == expected


def test_sparse_input_conv2d_prints_as_a_conv2d():
    assert repr(nn.SparseInputConv2d(133, 64, 5, stride=2, padding=2)) == \
        "SparseInputConv2d(133, 64, kernel_size=(5, 5), stride=(2, 2), padding=(2, 2))"
