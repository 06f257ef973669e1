from .batchnorm import BatchNorm2d
from .container import ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d, SparseInputConv2d
from .layers import (Dropout, Flatten, Identity, LeakyReLU, Linear, LocalResponseNorm, MaxPool2d, ReLU, Reshape, Sigmoid,
                     Tanh)
from .loss import L1Loss, MSELoss
from .module import Module, Parameter

__all__ = ["BatchNorm2d", "Conv2d", "ConvTranspose2d", "Dropout", "Flatten", "Identity", "L1Loss",
           "LeakyReLU", "Linear", "LocalResponseNorm", "MSELoss", "MaxPool2d", "Module", "ModuleList", "Parameter",
           "ReLU", "Reshape", "Sequential", "Sigmoid", "SparseInputConv2d", "Tanh"]
