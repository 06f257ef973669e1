"""nn: a small reverse-mode autodiff library on NumPy (CPU) and CuPy (GPU).

    import nn
    import nn.functional as F
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2))
    y = model(nn.Tensor(x)); loss = F.mse_loss(y, target); loss.backward()
    nn.optim.Adam(model.parameters(), lr=1e-3).step()
"""
from . import functional, init, optim, process, random, serialization
from .backend import DeviceError, check_device, device_of, get_array_module, to_device, to_numpy
from .function import Function
from .gradcheck import gradcheck
from .graph import draw_graph, to_dot
from .modules import (BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, Flatten, Identity, L1Loss,
                      LeakyReLU, Linear, LocalResponseNorm, MaxPool2d, Module, ModuleList, MSELoss, Parameter, ReLU,
                      Reshape, Sequential, Sigmoid, SparseInputConv2d, Tanh)
from .serialization import WeightFileError, load, load_arrays, save, save_arrays
from .tensor import RemovableHandle, Tensor, as_tensor, is_grad_enabled, no_grad
