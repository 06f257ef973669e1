"""Reference data for loading the authors' released decoders (``invert_alexnet_*`` caffemodels).

    python -m tests.reference.make_released_decoder_fixture      # from the repository root; needs torch and protobuf

Writes ``tests/fixtures/weights/released_conv5.caffemodel``: a conv5 decoder at reduced widths
(Table 5's layers: three Convolutions, five Deconvolutions, with ReLU layers between them, as a
Caffe net definition lists them), serialised by protobuf classes built from Caffe's schema; and
``released_conv5_reference.npz``: an input and the output of the same network in PyTorch
(built from our layer table, leaky ReLU 0.2), which the loaded decoder must reproduce.
"""
import os

import numpy as np
import torch

from models.networks import decoders
from tests.reference.make_weight_fixtures import FIXTURES, caffe_classes, fill_blob
from tests.reference.torch_decoders import TorchDecoder

WIDTHS = {"conv1": 16, "conv2": 16, "conv3": 16, "upconv1": 16, "upconv2": 8, "upconv3": 4, "upconv4": 4,
          "upconv5": 3}
IN_CHANNELS = 12


def main():
    rng = np.random.default_rng(5)
    ours = decoders.Decoder(decoders.CONV5, IN_CHANNELS, out_channels=WIDTHS)
    for p in ours.parameters():
        p.data = (rng.standard_normal(p.shape) * 0.2).astype(np.float32)
    net = caffe_classes()(name="invert_alexnet_conv5_small")
    net.layer.add(name="data", type="Input")
    for row in decoders.CONV5:
        layer = net.layer.add(name=f"de{row.name}" if row.kind == "upconv" else row.name,
                              type="Deconvolution" if row.kind == "upconv" else "Convolution")
        for blob in (getattr(ours, row.name).weight.data, getattr(ours, row.name).bias.data):
            fill_blob(layer.blobs.add(), blob)
        net.layer.add(name=f"relu_{row.name}", type="ReLU")
    with open(os.path.join(FIXTURES, "released_conv5.caffemodel"), "wb") as f:
        f.write(net.SerializeToString())
    theirs = TorchDecoder(ours)
    with torch.no_grad():
        for name, value in ours.state_dict().items():
            layer, kind = name.rsplit(".", 1)
            getattr(theirs.layers[layer], kind).copy_(torch.from_numpy(value))
        x = rng.standard_normal((1, IN_CHANNELS, 6, 6)).astype(np.float32)
        y = theirs(torch.from_numpy(x)).numpy()
    np.savez_compressed(os.path.join(FIXTURES, "released_conv5_reference.npz"), input=x, output=y)
    print("output", y.shape)


if __name__ == "__main__":
    main()
