"""nn.Module and the layers as PyTorch users expect them: the module tree, dtypes and devices,
state dicts saved with nn.save / nn.load, hooks, ModuleList, the new layers and losses against
PyTorch's values (tests/reference/make_module_fixtures.py), and gradient checks of their ops."""
import os

import numpy as np
import pytest

import nn
import nn.functional as F

REF = np.load(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "module_reference.npz"))


def small_net():
    nn.random.seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Sequential(nn.Tanh(), nn.Identity()), nn.Flatten(), nn.Linear(8 * 4 * 4, 2))


# --- the module tree ---------------------------------------------------------------------------
def test_modules_children_apply_and_add_module():
    net = small_net()
    assert [name for name, _ in net.named_modules()] == ["", "0", "1", "2", "3", "3.0", "3.1", "4", "5"]
    assert list(net.modules())[0] is net and len(list(net.modules())) == 9
    assert [name for name, _ in net.named_children()] == ["0", "1", "2", "3", "4", "5"]
    assert list(net.children())[3] is net[3]
    visited = []
    assert net.apply(lambda m: visited.append(type(m).__name__)) is net
    assert visited == ["Conv2d", "BatchNorm2d", "ReLU", "Tanh", "Identity", "Sequential", "Flatten", "Linear",
                       "Sequential"]  # children first, as PyTorch
    head = nn.Module()
    head.add_module("fc", nn.Linear(2, 2))
    assert [n for n, _ in head.named_parameters()] == ["fc.weight", "fc.bias"]
    with pytest.raises(ValueError, match="without '.'"):
        head.add_module("a.b", nn.ReLU())


def test_module_list():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
    layers.append(nn.Linear(2, 3))
    layers.insert(0, nn.Tanh())
    assert len(layers) == 4 and isinstance(layers[0], nn.Tanh) and layers[-1].weight.shape == (3, 2)
    assert [n for n, _ in layers.named_parameters()][:2] == ["1.weight", "1.bias"]
    assert isinstance(layers[1:], nn.ModuleList) and len(layers[1:]) == 3
    del layers[0]
    assert [type(m).__name__ for m in layers] == ["Linear"] * 3 and list(layers._modules) == ["0", "1", "2"]


def test_repr_is_pytorchs_tree():
    text = repr(small_net())
    assert text.startswith("Sequential(\n  (0): Conv2d(3, 8, kernel_size=(3, 3)")
    assert "\n  (1): BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n" in text
    assert "\n  (3): Sequential(\n    (0): Tanh()\n    (1): Identity()\n  )\n" in text
    assert "(4): Flatten(start_dim=1, end_dim=-1)" in text and text.endswith("\n)")


def test_float_double_to_and_requires_grad(xp, device):
    net = small_net().to(device.replace("gpu", "cuda"))  # 'cuda' is the GPU's other name
    bn = net[1]
    assert net.device == device and nn.device_of(bn.running_mean) == device
    net.double()
    assert {p.dtype for p in net.parameters()} == {np.dtype(np.float64)} and bn.running_var.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64  # integer buffers keep their dtype
    net.to(np.float32)
    assert {p.dtype for p in net.parameters()} == {np.dtype(np.float32)} and bn.running_mean.dtype == np.float32
    net.float().to("cpu", np.float64)
    assert net.device == "cpu" and net[0].weight.dtype == np.float64
    assert net.cpu() is net
    t = nn.Tensor(np.ones(2, np.float32)).to(device.replace("gpu", "cuda"))
    assert t.device == device
    with pytest.raises(TypeError, match="floating"):
        net.to(np.int32)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        net.to("tpu")
    assert net.requires_grad_(False) is net and not any(p.requires_grad for p in net.parameters())
    x = nn.Tensor(np.ones((2, 3, 4, 4)))
    assert not net(x).requires_grad


def test_zero_grad_set_to_none_or_in_place(xp, device):
    net = small_net().to(device)
    F.mse_loss(net(nn.Tensor(xp.ones((2, 3, 4, 4), np.float32))), nn.Tensor(xp.zeros((2, 2), np.float32))).backward()
    grad = net[0].weight.grad
    net.zero_grad(set_to_none=False)
    assert net[0].weight.grad is grad and float(nn.to_numpy(grad).max()) == 0.0
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


# --- state dicts, nn.save / nn.load ------------------------------------------------------------
def test_state_dict_round_trip_through_nn_save_and_load(tmp_path, xp, device):
    net = small_net().to(device)
    net(nn.Tensor(xp.asarray(np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32))))
    assert list(net.state_dict())[:6] == ["0.weight", "0.bias", "1.weight", "1.bias", "5.weight", "5.bias"]
    assert list(net.state_dict())[6:] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    path = tmp_path / "net.h5"
    nn.save(net.state_dict(), path)
    loaded = nn.load(path)
    assert isinstance(loaded["0.weight"], np.ndarray) and int(loaded["1.num_batches_tracked"]) == 1
    other = nn.Sequential(*[small_net()[i] for i in range(6)]).to(device)
    other[0].weight.data += 1
    result = other.load_state_dict(loaded)
    assert result.missing_keys == [] and result.unexpected_keys == [] and result == ([], [])
    for (name, a), b in zip(net.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(nn.to_numpy(a), nn.to_numpy(b), err_msg=name)
        assert nn.device_of(b) == device
    partial = {k: v for k, v in loaded.items() if k != "5.bias"}
    partial["extra"] = np.zeros(1, np.float32)
    assert other.load_state_dict(partial, strict=False) == (["5.bias"], ["extra"])
    with pytest.raises(ValueError, match=r"net.h5: does not fit Sequential: missing \[\], unexpected \['extra'\]"):
        small_net().load_state_dict(nn.load(_with_extra(path, tmp_path)))
    with pytest.raises(TypeError, match="dict of arrays"):
        nn.save(net, path)


def _with_extra(path, tmp_path):
    arrays = dict(nn.load(path), extra=np.zeros(1, np.float32))
    nn.save(arrays, tmp_path / "net.h5")
    return tmp_path / "net.h5"


# --- hooks -------------------------------------------------------------------------------------
def test_hooks_get_pytorchs_arguments_and_handles_remove_them(xp):
    nn.random.seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    for p in net.parameters():
        p.data = xp.asarray(p.data.astype(np.float64))
    x = nn.Tensor(xp.asarray(np.random.default_rng(1).standard_normal((5, 3))), requires_grad=True)
    calls = []
    handles = [
        net[1].register_forward_pre_hook(lambda m, args: calls.append(("pre", m, args))),
        net[1].register_forward_hook(lambda m, args, out: calls.append(("forward", m, args, out))),
        net[1].register_full_backward_hook(lambda m, gi, go: calls.append(("backward", m, gi, go))),
    ]
    y = net(x)
    gy = xp.asarray(np.random.default_rng(2).standard_normal((5, 2)))
    y.backward(gy)
    kinds = [c[0] for c in calls]
    assert kinds == ["pre", "forward", "backward"] and all(c[1] is net[1] for c in calls)
    pre_args, (_, _, args, out), (_, _, grad_input, grad_output) = calls[0][2], calls[1], calls[2]
    assert isinstance(pre_args, tuple) and len(pre_args) == 1 and isinstance(args, tuple)
    assert isinstance(grad_input, tuple) and isinstance(grad_output, tuple) and len(grad_input) == len(grad_output) == 1
    w2 = nn.to_numpy(net[2].weight.data)
    expected_go = nn.to_numpy(gy) @ w2  # d loss / d tanh output
    np.testing.assert_allclose(nn.to_numpy(grad_output[0]), expected_go, rtol=1e-12)
    t = nn.to_numpy(out.data)
    np.testing.assert_allclose(nn.to_numpy(grad_input[0]), expected_go * (1 - t * t), rtol=1e-12)

    # a pre hook's return replaces the arguments; a backward hook's replaces grad_input
    for h in handles:
        h.remove()
    calls.clear()
    net(x)
    assert calls == []
    net[1].register_forward_pre_hook(lambda m, args: args[0] * 2.0)
    net[1].register_full_backward_hook(lambda m, gi, go: (gi[0] * 0.0,))
    net.zero_grad()
    x.grad = None
    out = net(x)
    expected = F.linear(F.tanh(net[0](x) * 2.0), net[2].weight, net[2].bias)
    np.testing.assert_allclose(nn.to_numpy(out.data), nn.to_numpy(expected.data), rtol=1e-12)
    out.backward(gy)
    assert float(np.abs(nn.to_numpy(net[0].weight.grad)).max()) == 0.0
    assert float(np.abs(nn.to_numpy(net[2].weight.grad)).max()) > 0.0


def test_full_backward_hook_on_a_first_layer_gets_no_input_gradient():
    layer = nn.Linear(3, 2)
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go[0].shape)))
    layer(nn.Tensor(np.ones((4, 3), np.float32))).sum().backward()
    assert seen == [((None,), (4, 2))] and layer.weight.grad is not None


def test_the_two_argument_backward_hook_is_gone():
    assert not hasattr(nn.Module, "register_backward_hook")


# --- layers and losses against PyTorch ---------------------------------------------------------
def _batch_norm(xp, training):
    bn = nn.BatchNorm2d(3).double().to("gpu" if xp is not np else "cpu")
    bn.weight.data, bn.bias.data = xp.asarray(REF["bn.weight"]), xp.asarray(REF["bn.bias"])
    bn.running_mean[...] = xp.asarray(REF["bn.running_mean"])
    bn.running_var[...] = xp.asarray(REF["bn.running_var"])
    return bn.train(training)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batch_norm_2d_follows_pytorch(xp, mode):
    bn = _batch_norm(xp, mode == "train")
    x = nn.Tensor(xp.asarray(REF["bn.x"]), requires_grad=True)
    y = bn(x)
    y.backward(xp.asarray(REF["bn.gy"]))
    for name, got in (("y", y.data), ("gx", x.grad), ("gweight", bn.weight.grad), ("gbias", bn.bias.grad)):
        np.testing.assert_allclose(nn.to_numpy(got), REF[f"bn.{mode}.{name}"], rtol=1e-10, atol=1e-12, err_msg=name)
    if mode == "train":
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            np.testing.assert_allclose(nn.to_numpy(getattr(bn, name)), REF[f"bn.train.{name}"], rtol=1e-12)
    else:
        np.testing.assert_array_equal(nn.to_numpy(bn.running_mean), REF["bn.running_mean"])
        assert int(bn.num_batches_tracked) == 0


def test_batch_norm_statistics_options(xp):
    x = nn.Tensor(xp.asarray(REF["bn.x"]).astype(np.float32))
    cumulative = nn.BatchNorm2d(3, momentum=None).to("gpu" if xp is not np else "cpu")
    cumulative(x), cumulative(x * 3.0)
    batch_means = [REF["bn.x"].mean(axis=(0, 2, 3)), 3 * REF["bn.x"].mean(axis=(0, 2, 3))]
    np.testing.assert_allclose(nn.to_numpy(cumulative.running_mean), np.mean(batch_means, axis=0), rtol=1e-5)
    untracked = nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval()
    y = nn.to_numpy(untracked(nn.Tensor(REF["bn.x"])).data)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)  # batch statistics even in eval mode
    assert list(untracked.state_dict()) == []
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm2d(3)(nn.Tensor(np.ones((1, 3, 1, 1), np.float32)))


@pytest.mark.parametrize("name", ["mse", "l1"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_follow_pytorch(xp, name, reduction):
    module = {"mse": nn.MSELoss, "l1": nn.L1Loss}[name](reduction=reduction)
    x = nn.Tensor(xp.asarray(REF["loss.x"]), requires_grad=True)
    y = module(x, nn.Tensor(xp.asarray(REF["loss.t"])))
    y.backward(xp.asarray(REF["loss.gy_none"]) if reduction == "none" else None)
    np.testing.assert_allclose(nn.to_numpy(y.data), REF[f"loss.{name}.{reduction}.y"], rtol=1e-12)
    np.testing.assert_allclose(nn.to_numpy(x.grad), REF[f"loss.{name}.{reduction}.gx"], rtol=1e-12)


def test_losses_of_scalars():
    for loss in (F.mse_loss, F.l1_loss):
        x = nn.Tensor(np.float32(3.0), requires_grad=True)
        y = loss(x, nn.Tensor(np.float32(1.0)))
        y.backward()
        assert y.shape == () and float(x.grad) == (4.0 if loss is F.mse_loss else 1.0)


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_activations_follow_pytorch(xp, name):
    layer = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid()}[name]
    np.testing.assert_allclose(nn.to_numpy(layer(nn.Tensor(xp.asarray(REF["act.x"]))).data), REF[f"act.{name}.y"],
                               rtol=1e-12)


def test_flatten_and_identity():
    x = nn.Tensor(np.zeros((2, 3, 4, 5), np.float32))
    assert nn.Flatten()(x).shape == (2, 60) and nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5) and nn.Flatten(-2)(x).shape == (2, 3, 20)
    assert nn.Identity(54, unused=1)(x) is x
    with pytest.raises(ValueError, match="Flatten"):
        nn.Flatten(3, 1)(x)


# --- gradient checks (float64) -----------------------------------------------------------------
def _rand(xp, *shape, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(xp, training):
    weight, bias = (nn.Tensor(_rand(xp, 3, seed=s), requires_grad=True) for s in (1, 2))
    mean, var = _rand(xp, 3, seed=3) * 0.1, xp.abs(_rand(xp, 3, seed=4)) + 0.5
    def op(x, w, b):
        return F.batch_norm(x, mean.copy(), var.copy(), w, b, training=training)

    inputs = [_rand(xp, 2, 3, 2, 3), weight.data, bias.data]
    nn.gradcheck(op, inputs)
    # every entry too; in training some entries of the input's Jacobian are near 0 (the batch mean
    # is subtracted), where the relative error of a central difference is larger
    nn.gradcheck(op, inputs, full_jacobian=True, eps=1e-4, rtol=1e-3)
    nn.gradcheck(lambda x: F.batch_norm(x, None, None, training=True), [_rand(xp, 3, 2, 2)])  # (N, C, L), no affine


@pytest.mark.parametrize("op", [F.l1_loss, F.mse_loss])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_gradcheck(xp, op, reduction):
    nn.gradcheck(lambda x, t: op(x, t, reduction=reduction), [_rand(xp, 2, 3, seed=5), _rand(xp, 2, 3, seed=6)],
                 full_jacobian=True)


@pytest.mark.parametrize("op", [F.tanh, F.sigmoid])
def test_activation_gradcheck(xp, op):
    nn.gradcheck(op, [_rand(xp, 3, 4) * 3], full_jacobian=True)


def test_gradcheck_of_a_module_leaves_it_as_it_was(xp, device):
    net = small_net().to(device)
    net[0].weight.grad = xp.ones(net[0].weight.shape, np.float32)
    before = {k: nn.to_numpy(v).copy() for k, v in net.state_dict().items()}
    grad = net[0].weight.grad
    report = nn.gradcheck(net, [_rand(xp, 2, 3, 4, 4)], params=net)
    assert "1.weight" in report and "0.weight" in report
    for name, value in net.state_dict().items():
        assert value.dtype == before[name].dtype, name
        np.testing.assert_array_equal(nn.to_numpy(value), before[name], err_msg=name)
    assert net[0].weight.grad is grad and net[5].weight.grad is None


def test_gradcheck_refuses_nan_and_inf_inputs():
    for bad in (np.nan, np.inf):
        x = np.ones(3)
        x[1] = bad
        with pytest.raises(ValueError, match="input0 holds NaN or infinite"):
            nn.gradcheck(F.tanh, [x])
