"""cli.py inspect: the decoder a user would run, which weights it holds, and one backward's gradients per layer."""
import glob
import os
import shutil

import imageio.v3 as iio
import numpy as np
from click.testing import CliRunner

import nn
import nn.functional as F
from cli import main
from models.analyses.inspect_model import gradient_table

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sorted(glob.glob(os.path.join(TESTS, "..", "models", "data", "sample", "*.jpg")))
SMALL_CAFFENET = os.path.join(TESTS, "fixtures", "alexnet", "caffenet_small.h5")
SHIPPED_HOG = os.path.join(TESTS, "..", "models", "evaluation", "pretrained", "hog.h5")


def invoke(*args):
    result = CliRunner().invoke(main, ["inspect", *[str(a) for a in args]])
    assert result.exit_code == 0, result.output
    return result.output


def total_parameters(output):
    return int(next(line for line in output.splitlines() if line.startswith("| total |")).split("|")[4])


def test_a_decoder_is_the_one_a_user_would_run():
    shipped = invoke("hog")
    assert "hog: shipped weights from " in shipped and "pretrained" in shipped
    assert total_parameters(shipped) == 5201651 and "| upconvJ6 | ConvTranspose2d | (3, 64, 64) |" in shipped
    paper = invoke("hog", "--preset", "paper")
    assert "hog: random weights (preset paper: width 1, image size 256)" in paper
    assert total_parameters(paper) == 20504035 and "(3, 256, 256)" in paper
    cpu = invoke("hog", "--preset", "cpu")
    assert "random weights (preset cpu: width 0.5, image size 64)" in cpu and total_parameters(cpu) == 5201651
    assert "hog: random weights (preset cpu: width 0.25, image size 64)" in invoke("hog", "--width", 0.25)
    assert "conv5: random weights (preset cpu: width 0.125)" in invoke("conv5")  # no shipped conv5 decoder


def test_alexnet_says_which_weights():
    assert "caffenet: random weights (no --weights given)" in invoke("caffenet")
    assert f"caffenet: weights from {SMALL_CAFFENET}" in invoke("caffenet", "--weights", SMALL_CAFFENET)


def test_gradient_statistics_per_layer_and_the_weights_in_the_figure_title(tmp_path, monkeypatch):
    import models.display.plot as plot
    titles = []
    draw = plot.plot_bars
    monkeypatch.setattr(plot, "plot_bars", lambda path, labels, series, title="", **kw:
                        titles.append(title) or draw(path, labels, series, title, **kw))
    named = tmp_path / "my_hog.h5"
    shutil.copy(SHIPPED_HOG, named)
    output = invoke("hog", "--checkpoint", named, "--image", SAMPLES[0], "--out", tmp_path / "hog.png")
    assert f"hog: trained weights from {named}" in output and f"weights from {named}" in titles[0]
    assert "gradients of the reconstruction loss" in output
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in output.split("one backward:")[1].splitlines()
            if line.startswith("| ") and not line.startswith("| layer")}
    assert list(rows)[0] == "convA1" and len(rows) == 13
    values = np.array([[float(v) for v in row] for row in rows.values()])
    assert values.shape == (13, 6) and np.isfinite(values).all() and (values[:, [0, 3]] > 0).all()
    assert iio.imread(tmp_path / "hog.png").shape[0] > 300
    shipped = invoke("hog", "--image", SAMPLES[0], "--out", tmp_path / "shipped.png")
    assert "shipped weights from" in titles[1] and "hog: shipped weights" in shipped
    invoke("caffenet", "--image", SAMPLES[0], "--weights", SMALL_CAFFENET, "--out", tmp_path / "c.png")
    assert f"weights from {SMALL_CAFFENET}" in titles[2]
    assert "gradients of the top class's score" in invoke("caffenet", "--image", SAMPLES[0])


def test_gradient_table_matches_a_hand_computed_backward():
    nn.random.seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(3, 2, 3, padding=1))
    rng = np.random.default_rng(0)
    x, target = rng.standard_normal((1, 2, 5, 5)).astype(np.float32), rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    rows, loss = gradient_table(model, x, target)
    assert [r["layer"] for r in rows] == ["0", "2"] and all(p.grad is None for p in model.parameters())
    hidden = model[0](nn.Tensor(x)).retain_grad()
    F.mse_loss(model[2](model[1](hidden)), nn.Tensor(target), reduction="paper").backward()
    np.testing.assert_allclose(rows[0]["grad_out_norm"], np.linalg.norm(hidden.grad), rtol=1e-5)
    np.testing.assert_allclose(rows[0]["grad_out_max"], np.abs(hidden.grad).max(), rtol=1e-5)
    np.testing.assert_allclose(rows[0]["grad_w_mean"], model[0].weight.grad.mean(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(rows[1]["grad_w_norm"], np.linalg.norm(model[2].weight.grad), rtol=1e-5)
