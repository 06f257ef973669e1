"""Trained decoders as small files (models/evaluation/pretrained.py): export, load, and reconstruct with the
shipped decoder when no checkpoint is given."""
import glob
import os

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from models.evaluation import inference, pretrained
from models.training.train import TrainConfig, train
from nn.serialization import seal_file
from tests.conftest import sample_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    photos = root / "photos"
    sample_folder(photos, 7)
    cfg = TrainConfig(feature="hog", data=str(photos), out=str(root / "run"), iters=4, batch_size=2, width=1 / 16,
                      image_size=64, val_every=2, checkpoint_every=2, workers=1, crops=2, channel_scale=True)
    train(cfg, log=lambda *_: None)
    return root


def test_export_keeps_half_the_bytes_and_the_same_reconstructions(run, tmp_path):
    out = tmp_path / "hog.h5"
    result = CliRunner().invoke(main, ["export-decoder", str(run / "run" / "best.h5"), "--out", str(out),
                                       "--recipe", "cli.py train hog ..."])
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        assert f.attrs["kind"] == "decoder"
        dtypes = set()
        f["model"].visititems(lambda name, obj: dtypes.add(obj.dtype) if isinstance(obj, h5py.Dataset) else None)
        assert dtypes == {np.dtype(np.float16)}
    _, _, attrs = pretrained.read_decoder_file(out)
    assert attrs["training"]["recipe"] == "cli.py train hog ..." and attrs["training"]["width"] == 1 / 16
    assert attrs["held_out"]["decoder"] > 0 and set(attrs["held_out"]["baselines"]) == {"mean image",
                                                                                        "linear (ridge)"}
    from_checkpoint = inference.load_decoder(str(run / "run" / "best.h5"))
    from_file = inference.load_decoder(str(out))
    photos = from_file.photos(SAMPLES[:2])[0]
    a, b = from_checkpoint.reconstruct(photos)[1], from_file.reconstruct(photos)[1]
    assert np.abs(a - b).max() < 2.0  # float16 weights: within 2 grey levels of 255


def test_reconstruct_uses_the_shipped_decoder_when_no_checkpoint_is_given(run, tmp_path, monkeypatch):
    shipped = tmp_path / "pretrained"
    shipped.mkdir()
    pretrained.export_decoder(str(run / "run" / "checkpoint.h5"), str(shipped / "hog.h5"))
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", str(shipped))
    out = tmp_path / "r.png"
    result = CliRunner().invoke(main, ["reconstruct", "hog", SAMPLES[0], "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "(shipped hog decoder)" in result.output and out.exists()
    missing = CliRunner().invoke(main, ["reconstruct", "lbp", SAMPLES[0], "--out", str(out)])
    assert missing.exit_code == 1 and "no decoder is shipped for lbp" in missing.output


def test_a_file_that_is_not_a_decoder_is_one_clear_error(tmp_path):
    bogus = tmp_path / "x.h5"
    with h5py.File(bogus, "w") as f:
        f.attrs["kind"] = "decoder"
    seal_file(bogus)
    with pytest.raises(Exception, match="not a featinv decoder file"):
        pretrained.read_decoder_file(str(bogus))


# The bundled photos that are among the 64 held-out originals of the split the shipped decoders
# were trained on (bench/make_shallow_split.py --val 64; docs/results/README.md): never trained on.
HELD_OUT_SAMPLES = ["enlightenment_Lichen-Branches.jpg", "lomiri1604_Picture_0B_by_freespace.jpg",
                    "lomiri1604_friends_by_Aitzol_Berasategi.jpg", "lomiri1604_life_by_Aitzol_Berasategi.jpg",
                    "scribus_br2_nature.jpg", "sklearn_china.jpg"]


@pytest.mark.parametrize("feature", ["hog", "sift", "lbp"])
def test_the_shipped_decoders_reconstruct_photos_they_never_saw(feature):
    from models.scoring.metrics import normalized_error
    path = pretrained.shipped_decoder(feature)
    assert path is not None, f"no decoder shipped for {feature}"
    _, _, attrs = pretrained.read_decoder_file(path)
    held_out = attrs["held_out"]
    assert held_out["decoder"] < min(held_out["baselines"].values())  # as trained: beats both baselines
    decoder = inference.load_decoder(feature=feature)
    photos = decoder.photos([os.path.join(ROOT, "models", "data", "sample", name) for name in HELD_OUT_SAMPLES])[0]
    targets, reconstructions = (np.asarray(a, np.float32) for a in decoder.reconstruct(photos))
    error = normalized_error(targets, reconstructions)
    # The mean of these very photos is an oracle baseline (better than any mean training image).
    oracle_mean = normalized_error(targets, np.broadcast_to(targets.mean(axis=0), targets.shape))
    assert error < oracle_mean - 0.05, (feature, error, oracle_mean)
