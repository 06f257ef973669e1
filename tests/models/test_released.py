"""The authors' released decoders (Caffe Deconvolution nets) load into our decoders."""
import os

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import nn
from cli import main
from models.networks import decoders
from models.evaluation.released import load_released_decoder, released_arrays

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "weights")
RELEASED = os.path.join(WEIGHTS, "released_conv5.caffemodel")


def test_released_conv5_decoder_reproduces_pytorch():
    """Weights from a caffemodel written by protobuf; output equals PyTorch on the same weights."""
    ref = np.load(os.path.join(WEIGHTS, "released_conv5_reference.npz"))
    model = load_released_decoder(RELEASED, "conv5")
    assert model.upconv1.weight.shape == (16, 16, 5, 5)  # Caffe's Deconvolution layout (C_in, C_out, k, k)
    with nn.no_grad():
        y = model(nn.Tensor(ref["input"])).data
    assert np.abs(y - ref["output"]).max() <= 1e-4 * np.abs(ref["output"]).max()


def test_a_file_of_another_decoder_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="8 parametric layers .* but the hog decoder has 13"):
        released_arrays(RELEASED, "hog")
    with pytest.raises(ValueError, match="layer conv1 is a Convolution, but fc8's layer fc1 is a fc"):
        released_arrays(RELEASED, "fc8")


def test_import_weights_decoder_command_and_reconstruct(tmp_path):
    out = tmp_path / "decoder.h5"
    result = CliRunner().invoke(main, ["import-weights", RELEASED, "--decoder", "conv5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        assert f.attrs["model"] == "decoder/conv5"
    arrays, _ = nn.load_arrays(out)
    model = decoders.from_arrays("conv5", arrays)
    assert model.in_channels == 12


def test_shapes_that_do_not_chain_name_the_layer(tmp_path):
    arrays = released_arrays(RELEASED, "conv5")
    arrays["conv2.weight"] = arrays["conv2.weight"][:, :8]
    with pytest.raises(ValueError, match=r"conv2.weight has shape \(16, 8, 3, 3\)"):
        decoders.from_arrays("conv5", arrays)
