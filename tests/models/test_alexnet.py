"""models/networks/alexnet.py: CaffeNet and torchvision AlexNet against PyTorch references, shapes, gradients,
dropout, input preparation and weight-file errors.

The references in tests/fixtures/alexnet/ come from tests/reference/make_alexnet_fixtures.py (PyTorch, run
once): reduced-width networks of the full topology with seeded random weights, their weights as our
HDF5 weight file, and every tap's output for two 256x256 images (PyTorch, float64, eval mode).
"""
import os

import h5py
import numpy as np
import pytest

import nn
from nn.serialization import seal_file
from models.networks import alexnet
from models.networks.alexnet import (TAP_SHAPES, TAPS, AlexNetTorchvision, CaffeNet, alexnet_torchvision,
                            caffenet, crop_box, feature_shape, prepare, prepare_torchvision)
from models.networks.imagenet_classes import CLASS_NAMES, WNIDS, class_index

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "alexnet")
FIXTURES_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "weights")
CAFFENET_FILE = os.path.join(FIXTURES, "caffenet_small.h5")
TORCHVISION_FILE = os.path.join(FIXTURES, "torchvision_small.h5")


def images():
    return np.load(os.path.join(FIXTURES, "images.npz"))["images"]


def reference(name):
    with np.load(os.path.join(FIXTURES, f"{name}_taps.npz")) as f:
        return {tap: f[tap] for tap in TAPS}


def rel_err(ours, ref):
    ours = ours.numpy() if isinstance(ours, nn.Tensor) else np.asarray(ours)
    return float(np.abs(ours.astype(np.float64) - ref).max() / np.abs(ref).max())


# --- agreement with PyTorch -------------------------------------------------------------------------

@pytest.mark.parametrize("builder, name", [(caffenet, "caffenet_small"),
                                           (alexnet_torchvision, "torchvision_small")])
def test_matches_pytorch_reference_at_every_tap(builder, name):
    net = builder(os.path.join(FIXTURES, f"{name}.h5"))
    assert not net.training  # the builders return evaluation mode
    ref = reference(name)
    with nn.no_grad():
        feats = net.features(net.prepare(images()), TAPS)
    for tap in TAPS:
        assert feats[tap].shape == ref[tap].shape, tap
        assert feats[tap].shape[1:] == net.tap_shape(tap), tap
        assert rel_err(feats[tap], ref[tap]) < 1e-4, (tap, rel_err(feats[tap], ref[tap]))
        assert np.abs(ref[tap]).max() > 0


def test_forward_until_and_blobs_agree_with_features():
    net = caffenet(CAFFENET_FILE)
    ref = reference("caffenet_small")
    x = prepare(images()[:1])
    with nn.no_grad():
        blobs = net.blobs(x)
        assert list(blobs) == list(net.steps)
        assert rel_err(net(x), ref["fc8"][:1]) < 1e-4  # forward() runs to fc8
        for tap in ("conv1", "conv4", "fc7"):
            out = net.forward(x, until=tap)
            assert rel_err(out, ref[tap][:1]) < 1e-4
            assert np.array_equal(out.numpy(), blobs[CaffeNet.TAP_STEPS[tap]].numpy())
        # Caffe's in-place ReLU: its "conv1" blob is our relu1; our conv1 step is pre-ReLU.
        assert blobs["conv1"].numpy().min() < 0 <= blobs["relu1"].numpy().min()
        assert set(alexnet.CAFFE_BLOB_STEPS.values()) <= set(net.steps)
        assert list(net.blobs(x, until="pool2")) == list(net.steps[:net.steps.index("pool2") + 1])
        single = net.features(x, "conv5")
        assert list(single) == ["conv5"]


def test_features_accepts_tensor_and_rejects_bad_input():
    net = caffenet(CAFFENET_FILE)
    x = prepare(images()[:1])
    with nn.no_grad():
        a = net.features(nn.Tensor(x), ("conv2",))["conv2"].numpy()
        b = net.features(x, ("conv2",))["conv2"].numpy()
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown feature tap"):
        net.features(x, ("conv6",))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net.features(x[:, :2], ("conv1",))
    with nn.no_grad():
        # convolutional taps work at other input sizes; fc6 needs pool5 6x6 (160 input gives 4x4)
        assert net.features(x[:, :, :160, :160], ("conv5",))["conv5"].shape == (1, 32, 4, 4)
        with pytest.raises(ValueError, match=r"pool5 gives maps \(32, 4, 4\).*fc6.*\(32, 1152\)"):
            net.features(x[:, :, :160, :160], ("fc6",))


# --- full width ---------------------------------------------------------------------------------------

def test_full_width_caffenet_shapes():
    nn.random.seed(0)
    net = caffenet()
    assert net.widths == alexnet.CAFFENET_WIDTHS
    assert [name for name, _ in net.named_parameters()] == \
        [f"{layer}.{p}" for layer in TAPS for p in ("weight", "bias")]
    assert tuple(net.conv2.weight.shape) == (256, 48, 5, 5) and tuple(net.fc6.weight.shape) == (4096, 9216)
    x = np.random.default_rng(0).standard_normal((1, 3, 227, 227)).astype(np.float32) * 50
    with nn.no_grad():
        feats = net.features(x, TAPS)
    for tap in TAPS:
        assert feats[tap].shape == (1,) + TAP_SHAPES[tap], tap
        assert feature_shape(tap) == TAP_SHAPES[tap] == net.tap_shape(tap)
        assert feats[tap].dtype == np.float32
    assert TAP_SHAPES["conv1"] == (96, 27, 27) and TAP_SHAPES["conv5"] == (256, 6, 6)
    with pytest.raises(ValueError, match="unknown feature tap"):
        feature_shape("pool5")


def test_full_width_torchvision_shapes():
    nn.random.seed(0)
    net = alexnet_torchvision()
    x = np.zeros((1, 3, 224, 224), np.float32)
    with nn.no_grad():
        feats = net.features(x, TAPS)
    for tap in TAPS:
        assert feats[tap].shape == (1,) + alexnet.TORCHVISION_TAP_SHAPES[tap], tap
        assert feature_shape(tap, "alexnet_torchvision") == net.tap_shape(tap)


# --- gradients ----------------------------------------------------------------------------------------

def test_gradients_reach_input_and_conv1_from_every_tap():
    net = caffenet(CAFFENET_FILE)
    x = prepare(images()[:1])
    for tap in TAPS:
        net.zero_grad()
        xt = nn.Tensor(x, requires_grad=True)
        out = net.features(xt, (tap,))[tap]
        assert out.requires_grad
        out.sum().backward()
        assert xt.grad is not None and np.abs(xt.grad).max() > 0, tap
        assert net.conv1.weight.grad is not None and np.abs(net.conv1.weight.grad).max() > 0, tap
        if tap == "fc8":
            assert all(p.grad is not None for p in net.parameters())
    with nn.no_grad():
        frozen = net.features(x, ("conv5",))["conv5"]
    assert not frozen.requires_grad and frozen.creator is None


def test_gradcheck_tiny_caffenet_float64():
    # A 71x71 input makes every ceil-mode pooling round up (pool1 16 -> 8, pool2 8 -> 4, pool5 4 -> 2).
    nn.random.seed(3)
    net = CaffeNet(widths=(4, 4, 6, 4, 4, 6, 6, 5), pool5_size=2).eval()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 71, 71)) * 40
    with nn.no_grad():
        blobs = net.blobs(x.astype(np.float32))
    assert blobs["pool1"].shape[2:] == (8, 8) and blobs["pool2"].shape[2:] == (4, 4)
    assert blobs["pool5"].shape[2:] == (2, 2)
    # 3e-5: central differences through ReLU, LRN and max-pooling reach 1.6e-5 on conv1.bias when
    # OpenBLAS runs its Haswell kernels (OPENBLAS_CORETYPE=Haswell), 5e-6 with the default ones.
    for tap in ("conv2", "fc8"):
        report = nn.gradcheck(lambda t, tap=tap: net.forward(t, until=tap), [x], params=net, rtol=3e-5)
        assert max(report.values()) < 3e-5, (tap, report)


def test_gradcheck_tiny_torchvision_float64():
    nn.random.seed(4)
    net = AlexNetTorchvision(widths=(4, 6, 6, 4, 4, 6, 6, 5), pool5_size=1).eval()
    x = np.random.default_rng(4).standard_normal((1, 3, 67, 67))
    report = nn.gradcheck(lambda t: net.forward(t, until="fc8"), [x], params=net, rtol=1e-5)
    assert max(report.values()) < 1e-5, report


# --- dropout -------------------------------------------------------------------------------------------

def test_dropout_only_in_training():
    net = caffenet(CAFFENET_FILE)
    x = prepare(images())
    with nn.no_grad():
        evaluated = [net.features(x, ("fc6", "fc8")) for _ in range(2)]
        net.train()
        trained = [net.features(x, ("fc6", "fc8")) for _ in range(2)]
        drop6 = net.blobs(x, until="drop6")
        net.eval()
    assert np.array_equal(evaluated[0]["fc8"].numpy(), evaluated[1]["fc8"].numpy())
    assert not np.allclose(trained[0]["fc8"].numpy(), trained[1]["fc8"].numpy())
    assert not np.allclose(trained[0]["fc8"].numpy(), evaluated[0]["fc8"].numpy())
    # fc6 is tapped after ReLU and before dropout: the same in both modes.
    assert np.allclose(trained[0]["fc6"].numpy(), evaluated[0]["fc6"].numpy())
    relu6, dropped = drop6["relu6"].numpy(), drop6["drop6"].numpy()
    on = relu6 > 0
    kept = dropped[on] != 0
    assert 0.2 < kept.mean() < 0.8
    assert np.allclose(dropped[on][kept], 2 * relu6[on][kept])  # inverted dropout, scale 1/(1-p)


# --- input preparation --------------------------------------------------------------------------------

def test_prepare_caffenet_shape_order_and_mean():
    img = np.zeros((256, 256, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30  # R, G, B
    x = prepare(np.stack([img, img]))
    assert x.shape == (2, 3, 227, 227) and x.dtype == np.float32
    assert np.allclose(x[:, 0], 30 - 104) and np.allclose(x[:, 1], 20 - 117) and np.allclose(x[:, 2], 10 - 123)
    # float input, a single image, a list: all the same
    assert np.array_equal(prepare(img.astype(np.float64)), x[:1])
    assert np.array_equal(prepare([img, img]), x)
    # independent formula on random images
    ims = images()
    expected = ims[:, 14:241, 14:241, ::-1].transpose(0, 3, 1, 2).astype(np.float64) \
        - np.array([104, 117, 123]).reshape(1, 3, 1, 1)
    assert np.allclose(prepare(ims), expected)
    # a BGR mean image (3, 256, 256) is centre-cropped; (3, 227, 227) is used as is
    mean = np.random.default_rng(1).uniform(90, 130, (3, 256, 256)).astype(np.float32)
    expected_m = ims[:, 14:241, 14:241, ::-1].transpose(0, 3, 1, 2) - mean[None, :, 14:241, 14:241]
    assert np.allclose(prepare(ims, mean=mean), expected_m, atol=1e-4)
    assert np.allclose(prepare(ims, mean=mean[:, 14:241, 14:241]), expected_m, atol=1e-4)
    assert np.allclose(prepare(ims, mean=np.array([1.0, 2.0, 3.0])),
                       ims[:, 14:241, 14:241, ::-1].transpose(0, 3, 1, 2) - np.array([1, 2, 3]).reshape(1, 3, 1, 1))
    with pytest.raises(ValueError, match="mean image has shape"):
        prepare(ims, mean=np.zeros((256, 256, 3)))
    with pytest.raises(ValueError, match="expected RGB"):
        prepare(np.zeros((1, 256, 256)))


def test_prepare_resizes_other_sizes_to_256():
    img = np.full((300, 200, 3), 77, np.uint8)
    x = prepare(img)
    assert x.shape == (1, 3, 227, 227)
    assert np.allclose(x[0, 0], 77 - 104) and np.allclose(x[0, 2], 77 - 123)
    ramp = np.repeat(np.linspace(0, 255, 512, dtype=np.float32)[None, :, None], 512, 0).repeat(3, 2)
    small = alexnet.resize_bilinear(ramp, (256, 256))
    assert small.shape == (256, 256, 3)
    assert np.all(np.diff(small[0, :, 0]) > 0) and np.allclose(small[:, 0], small[0, 0])
    mixed = prepare([img, np.full((256, 256, 3), 77, np.uint8)])  # different sizes in one list
    assert np.allclose(mixed[0], mixed[1])


def test_prepare_torchvision_and_crop_boxes():
    ims = images()
    x = prepare_torchvision(ims)
    assert x.shape == (2, 3, 224, 224) and x.dtype == np.float32
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = (ims[:, 16:240, 16:240].transpose(0, 3, 1, 2) / 255.0 - mean.reshape(1, 3, 1, 1)) \
        / std.reshape(1, 3, 1, 1)
    assert np.allclose(x, expected, atol=1e-5)  # RGB order kept
    assert crop_box(256) == (14, 14, 227) == caffenet(CAFFENET_FILE).crop_box()
    assert crop_box(256, 224) == (16, 16, 224) == alexnet_torchvision(TORCHVISION_FILE).crop_box(256)
    top, left, size = crop_box(256)
    assert np.array_equal(ims[:, top:top + size, left:left + size], ims[:, 14:241, 14:241])
    assert crop_box((512, 512)) == (28, 28, 454)
    assert all(isinstance(v, int) for v in crop_box(300))
    with pytest.raises(ValueError, match="not square"):
        crop_box((256, 300))


# --- weight files ---------------------------------------------------------------------------------------

def copy_weights(src, dst, change=None, model=None):
    with h5py.File(src, "r") as f:
        arrays = {f"{layer}.{p}": f[layer][p][()] for layer in f for p in f[layer]}
        attrs = dict(f.attrs)
    if change:
        arrays.update(change)
    if model is not None:
        attrs["model"] = model
    with h5py.File(dst, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        for name, array in arrays.items():
            f.create_dataset(name.replace(".", "/"), data=array)
    seal_file(dst)
    return dst


def test_weights_set_the_widths():
    net = caffenet(CAFFENET_FILE)
    assert net.widths == (12, 32, 48, 48, 32, 32, 32, 20)
    assert tuple(net.conv4.weight.shape) == (48, 24, 3, 3)
    tv = alexnet_torchvision(TORCHVISION_FILE)
    assert tv.widths == (8, 24, 48, 32, 32, 32, 32, 20)
    assert alexnet.build("caffenet", CAFFENET_FILE).widths == net.widths


def test_mismatched_shapes_name_the_layer_and_both_shapes(tmp_path):
    bad = copy_weights(CAFFENET_FILE, tmp_path / "bad.h5",
                       change={"conv3.weight": np.zeros((48, 30, 3, 3), np.float32)})
    with pytest.raises(nn.WeightFileError) as info:
        caffenet(bad)
    message = str(info.value)
    assert "conv3.weight" in message and "(48, 30, 3, 3)" in message and "(48, 32, 3, 3)" in message
    assert "conv2" in message
    fc = copy_weights(CAFFENET_FILE, tmp_path / "fc.h5", change={"fc6.weight": np.zeros((32, 100), np.float32)})
    with pytest.raises(nn.WeightFileError, match=r"fc6\.weight.*\(32, 100\).*\(32, 1152\)"):
        caffenet(fc)
    bias = copy_weights(CAFFENET_FILE, tmp_path / "bias.h5", change={"fc8.bias": np.zeros(7, np.float32)})
    with pytest.raises(nn.WeightFileError, match=r"fc8\.bias.*\(7,\).*\(20,\)"):
        caffenet(bias)
    # torchvision weights have conv2 reading all of conv1's channels: not a CaffeNet even if relabelled
    relabelled = copy_weights(TORCHVISION_FILE, tmp_path / "tv.h5", model="caffenet")
    with pytest.raises(nn.WeightFileError, match=r"conv1\.weight|conv2\.weight"):
        caffenet(relabelled)


def test_wrong_model_attribute_and_missing_layers(tmp_path):
    with pytest.raises(nn.WeightFileError, match=r"'caffenet'.*'alexnet_torchvision'.*caffenet\(weights"):
        alexnet_torchvision(CAFFENET_FILE)
    with pytest.raises(nn.WeightFileError, match="'alexnet_torchvision'.*'caffenet'"):
        caffenet(TORCHVISION_FILE)
    other = copy_weights(CAFFENET_FILE, tmp_path / "other.h5", model="decoder/hog")
    with pytest.raises(nn.WeightFileError, match="decoder/hog"):
        caffenet(other)
    with h5py.File(CAFFENET_FILE, "r") as f, h5py.File(tmp_path / "partial.h5", "w") as g:
        for key, value in f.attrs.items():
            g.attrs[key] = value
        for layer in ("conv1", "conv2"):
            f.copy(layer, g)
    seal_file(tmp_path / "partial.h5")
    with pytest.raises(nn.WeightFileError, match=r"missing \['conv3.weight'"):
        caffenet(tmp_path / "partial.h5")
    with pytest.raises(nn.WeightFileError, match="no such file"):
        caffenet(tmp_path / "absent.h5")


# --- class names ----------------------------------------------------------------------------------------

def test_imagenet_class_names():
    assert len(CLASS_NAMES) == len(WNIDS) == 1000 == len(set(WNIDS))
    assert list(WNIDS) == sorted(WNIDS)
    assert CLASS_NAMES[0] == "tench" and WNIDS[0] == "n01440764"
    assert CLASS_NAMES[999] == "toilet tissue"
    assert class_index("goldfish") == 1 == class_index("n01443537") == class_index("Carassius auratus")
    assert class_index("great_white_shark") == 2 and class_index(281) == 281
    assert CLASS_NAMES[class_index("tabby")] == "tabby"
    with pytest.raises(KeyError, match="ambiguous.*134.*517"):
        class_index("crane")
    with pytest.raises(KeyError, match="no ImageNet class"):
        class_index("not a class")


@pytest.mark.parametrize("source", ["caffenet_layer.caffemodel", "caffenet_v1.caffemodel", "caffenet_zoo.onnx",
                                    "alexnet_torchvision_zip.pth"])
def test_imported_weight_files_build_the_encoder(tmp_path, source):
    """From a file written by the real tool, through import-weights, to the encoder's features."""
    import weights_import
    weights = tmp_path / "weights.h5"
    arrays = weights_import.import_weights(os.path.join(FIXTURES_WEIGHTS, source), out=str(weights))
    build = alexnet.alexnet_torchvision if source.endswith(".pth") else alexnet.caffenet
    net = build(str(weights))
    assert np.array_equal(net.conv1.weight.data, arrays["conv1.weight"])
    size = 224 if source.endswith(".pth") else 227
    with nn.no_grad():
        taps = net.features(np.zeros((1, 3, size, size), np.float32), layers=("conv5", "fc8"))
    assert taps["conv5"].shape[2:] == (6, 6) and taps["fc8"].shape == (1, arrays["fc8.bias"].shape[0])
