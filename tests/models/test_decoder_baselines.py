"""Baselines that travel with a decoder: the compact ridge, its storage, export from a run, the
training photos' digests, and the fallback for a checkpoint without its run folder."""
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from models.data.provenance import photo_digest
from models.evaluation import inference, pretrained
from models.scoring.baselines import (ProjectedRidge, RidgeRegression, baseline_arrays, baselines_from_arrays,
                                      fit_on_samples)
from models.training.train import TrainConfig, train
from tests.conftest import sample_folder


def test_the_ridge_projected_onto_all_components_is_the_ridge():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 12)).astype(np.float32)
    y = (x @ rng.normal(size=(12, 30)) + 0.1 * rng.normal(size=(40, 30))).astype(np.float32)
    ridge = RidgeRegression().fit(x, y)
    test = rng.normal(size=(5, 12)).astype(np.float32)
    np.testing.assert_allclose(ProjectedRidge.from_ridge(ridge, y, 40).predict(test), ridge.predict(test),
                               rtol=1e-3, atol=1e-3)
    few = ProjectedRidge.from_ridge(ridge, y, 3)
    assert few.weight.shape == (12, 3) and few.basis.shape == (3, 30)
    np.testing.assert_allclose(few.basis @ few.basis.T, np.eye(3), atol=1e-4)
    # float16 storage keeps the predictions within a grey level of 255
    models = fit_on_samples(x, y)
    models[ridge.name] = few
    restored = baselines_from_arrays(baseline_arrays(models))
    assert np.abs(restored[ridge.name].predict(test) - few.predict(test)).max() < 2e-2 * np.abs(few.predict(test)).max()
    np.testing.assert_allclose(restored["mean image"].predict(test)[0], y.mean(0), atol=1e-3)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    sample_folder(root / "photos", 9)
    cfg = TrainConfig(feature="hog", data=str(root / "photos"), out=str(root / "run"), iters=2, batch_size=2,
                      width=1 / 16, image_size=64, val_every=2, checkpoint_every=2, workers=1, crops=2)
    train(cfg, log=lambda *_: None)
    return root


def test_export_carries_the_baselines_and_the_training_photos(run, tmp_path):
    out = tmp_path / "hog.h5"
    result = CliRunner().invoke(main, ["export-decoder", str(run / "run" / "checkpoint.h5"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    models, record, digests = pretrained.read_decoder_extras(out)
    photos = sorted(os.listdir(run / "photos"))
    in_training = {p for p in photos if photo_digest(run / "photos" / p) in digests}
    trained_on = len(in_training)
    assert trained_on >= 3 and len(digests) == trained_on
    assert f"with the baselines fitted on its {trained_on} training photos" in result.output
    assert set(models) == {"mean image", "linear (ridge)"} and record["photos"] == trained_on
    _, _, attrs = pretrained.read_decoder_file(out)
    assert attrs["held_out"]["photos"] == 9 - trained_on  # a count, not a path of the machine that trained it

    copied = tmp_path / "evaluated"
    copied.mkdir()
    for name in sorted(in_training)[:2] + sorted(set(photos) - in_training):
        shutil.copy(run / "photos" / name, copied)
    result = CliRunner().invoke(main, ["eval", "hog", "--checkpoint", str(out), "--data", str(copied)])
    assert result.exit_code == 0, result.output
    assert f"baselines: fitted on {trained_on} of the decoder's training photos (carried by hog.h5)" in result.output
    assert "WARNING: 2 photos of" in result.output
    assert f"| linear (ridge) | {2 + 9 - trained_on} |" in result.output


def test_a_copied_checkpoint_is_judged_against_baselines_fitted_on_bundled_photos(run, tmp_path):
    shutil.copy(run / "run" / "checkpoint.h5", tmp_path / "checkpoint.h5")
    trained = inference.TrainedDecoder(str(tmp_path / "checkpoint.h5"))
    assert trained.training_cache() is not None  # the configuration still names the run folder
    trained.config = dict(trained.config, out=None)
    fitted = trained.baselines()
    assert set(fitted) == {"mean image", "linear (ridge)"}
    assert trained.baselines_source.startswith("fitted on the ")
    assert "bundled photos" in trained.baselines_source
