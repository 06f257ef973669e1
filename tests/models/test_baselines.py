"""The baselines a decoder is judged against (models/scoring/baselines.py)."""
import numpy as np

from models.scoring.baselines import MeanImage, RidgeRegression, baseline_errors


def test_ridge_recovers_a_linear_map_and_chooses_a_small_penalty():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 20)).astype(np.float32)
    w = rng.standard_normal((20, 12))
    y = x @ w + 0.3
    groups = np.repeat(np.arange(60), 5)  # 60 "photos" of 5 samples each
    model = RidgeRegression().fit(x, y, groups)
    assert model.relative_lambda <= 1e-3
    x_test = rng.standard_normal((10, 20)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x_test), x_test @ w + 0.3, atol=0.02)


def test_ridge_penalises_more_when_the_features_are_noise():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 50)).astype(np.float32)
    y = rng.standard_normal((200, 4))  # unrelated to x: the best linear prediction is the mean
    model = RidgeRegression().fit(x, y, np.repeat(np.arange(40), 5))
    assert model.relative_lambda >= 1.0


def test_ridge_dual_form_equals_the_primal_solution():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 8)).astype(np.float32)
    y = rng.standard_normal((30, 3))
    model = RidgeRegression(relative_lambdas=[0.5]).fit(x, y, np.arange(30))
    xc, yc = x - x.mean(0), y - y.mean(0)
    primal = np.linalg.solve(xc.T @ xc + model.lambda_ * np.eye(8), xc.T @ yc)
    x_test = rng.standard_normal((4, 8))
    np.testing.assert_allclose(model.predict(x_test), (x_test - x.mean(0)) @ primal + y.mean(0), rtol=1e-4, atol=1e-5)


def test_mean_image_baseline_and_errors():
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    floats = targets.astype(np.float32).transpose(0, 3, 1, 2) / 255 - 0.5
    mean = MeanImage().fit(None, floats)
    errors, images = baseline_errors({"mean image": mean}, np.zeros((6, 1)), targets)
    np.testing.assert_allclose(images["mean image"][0], targets.mean(0), atol=1e-3)
    assert 0.4 < errors["mean image"] < 1.0  # the mean is closer than a random other image
