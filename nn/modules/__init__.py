from .container import Sequential
from .conv import Conv2d, ConvTranspose2d, SparseInputConv2d
from .layers import Dropout, Flatten, LeakyReLU, Linear, LocalResponseNorm, MaxPool2d, ReLU, Reshape
from .module import HookHandle, Module, Parameter

__all__ = ["Conv2d", "ConvTranspose2d", "Dropout", "Flatten", "HookHandle", "LeakyReLU", "Linear",
           "LocalResponseNorm", "MaxPool2d", "Module", "Parameter", "ReLU", "Reshape", "Sequential",
           "SparseInputConv2d"]
