"""The decoders of ``models.networks.decoders`` rebuilt in PyTorch, for reference data and benchmarks only.

Reads the same layer tables, so the two networks are the same by construction; ``copy_weights``
loads our parameters into the torch network (layouts are identical). Imports torch: never imported
by the library or by tests that must run without torch.
"""
import numpy as np
import torch

from models.networks import decoders


class TorchDecoder(torch.nn.Module):
    def __init__(self, ours):
        super().__init__()
        self.table = ours.table
        self.layers = torch.nn.ModuleDict()
        for row in self.table:
            layer = getattr(ours, row.name)
            if row.kind == "conv":
                o, i, k, _ = layer.weight.shape
                self.layers[row.name] = torch.nn.Conv2d(i, o, k, layer.stride, layer.padding)
            elif row.kind == "upconv":
                i, o, k, _ = layer.weight.shape
                self.layers[row.name] = torch.nn.ConvTranspose2d(i, o, k, layer.stride, layer.padding,
                                                                 layer.output_padding)
            elif row.kind == "fc":
                o, i = layer.weight.shape
                self.layers[row.name] = torch.nn.Linear(i, o)
            else:
                self.layers[row.name] = torch.nn.Unflatten(1, layer.shape)

    def forward(self, features):
        return decoders.run_table(self.table, features, lambda name: self.layers[name],
                                  lambda xs: torch.cat(xs, dim=1),
                                  lambda x: torch.nn.functional.leaky_relu(x, 0.2))


def copy_weights(ours, theirs):
    with torch.no_grad():
        for name, value in ours.state_dict().items():
            layer, kind = name.rsplit(".", 1)
            getattr(theirs.layers[layer], kind).copy_(torch.from_numpy(np.asarray(value)))


def torch_decoder(name, width, image_size, ours=None):
    ours = ours or decoders.build(name, width, image_size)
    theirs = TorchDecoder(ours)
    copy_weights(ours, theirs)
    return theirs
