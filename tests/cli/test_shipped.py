"""The shipped decoders through every command that takes a decoder, with their baselines; honest
titles and messages (no paths of this machine, random weights said); the command line's
conveniences (-h, --version, plurals, progress)."""
import inspect
import os
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import models.display.figures as figures
from cli import main
from models.analyses import report
from models.evaluation import pretrained

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "models", "data", "sample")
# bundled photos among the 64 originals held out of the shipped decoders' training, and two trained on
HELD_OUT = ["sklearn_china.jpg", "scribus_br2_nature.jpg"]
TRAINED_ON = ["skimage_coffee.jpg", "scipy_face.jpg"]


def photos(names):
    return [os.path.join(SAMPLE, name) for name in names]


def folder_of(tmp_path, names):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photos(names):
        shutil.copy(path, folder)
    return str(folder)


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def titles(monkeypatch):
    """The titles of the figures written while the test runs."""
    seen = []
    for name in ("write_grid", "write_reconstruction_figure"):
        original = getattr(figures, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(inspect.signature(_original).bind(*args, **kwargs).arguments.get("title"))
            return _original(*args, **kwargs)
        monkeypatch.setattr(figures, name, spy)
    monkeypatch.setattr(report, "write_grid", figures.write_grid)  # imported by name there
    return seen


def test_eval_uses_the_shipped_decoder_and_its_baselines(tmp_path):
    output = invoke("eval", "hog", "--data", folder_of(tmp_path, HELD_OUT))
    assert "shipped hog decoder" in output and pretrained.shipped_decoder("hog") in output
    assert "baselines: fitted on 1992 of the decoder's training photos" in output
    rows = {line.split("|")[1].strip(): float(line.split("|")[4]) for line in output.splitlines()
            if line.startswith("| ") and "method" not in line}
    assert set(rows) == {"decoder", "mean image", "linear (ridge)"}
    assert rows["decoder"] < rows["linear (ridge)"] < rows["mean image"]
    assert "training set" not in output


def test_eval_warns_when_photos_were_trained_on(tmp_path):
    output = invoke("eval", "lbp", "--data", folder_of(tmp_path, HELD_OUT[:1] + TRAINED_ON))
    assert "WARNING: 2 photos" in output and "were in the decoder's training set" in output
    assert "skimage_coffee.jpg" in output and "sklearn_china.jpg" not in output.split("WARNING")[1]


def test_a_decoder_file_without_baselines_has_them_fitted_on_the_bundled_photos_it_was_trained_on(tmp_path):
    config, weights, attrs = pretrained.read_decoder_file(pretrained.shipped_decoder("lbp"))
    digests = pretrained.read_decoder_extras(pretrained.shipped_decoder("lbp"))[2]
    bare = tmp_path / "lbp.h5"
    pretrained.write_decoder_file(bare, config, attrs["training"], attrs["held_out"], weights, None, digests)
    output = invoke("eval", "lbp", "--checkpoint", bare, "--data", folder_of(tmp_path, HELD_OUT))
    assert "baselines: fitted on the 23 bundled photos it was trained on" in output
    assert "| linear (ridge) |" in output and "| mean image |" in output


def test_reconstruct_shows_the_baselines_and_names_the_decoder_not_a_path(tmp_path, titles):
    out = tmp_path / "r.png"
    output = invoke("reconstruct", "hog", photos(HELD_OUT)[0], "--out", out)
    assert "(1 image)" in output and "of the decoder's training photos" in output
    assert set(titles) == {"Reconstructions from hog (shipped hog decoder)"}
    with_baselines = figures_width(out)
    invoke("reconstruct", "hog", photos(HELD_OUT)[0], "--out", out, "--no-baselines")
    assert with_baselines > figures_width(out)  # photo | decoder | mean image | ridge, against 2 columns


def figures_width(path):
    import imageio.v3 as iio
    return iio.imread(path).shape[1]


def test_perturb_and_interpolate_use_the_shipped_decoder(tmp_path, titles):
    output = invoke("perturb", "lbp", *photos(HELD_OUT), "--out", tmp_path / "p.png")
    assert "shipped lbp decoder" in output and (tmp_path / "p.png").exists()
    output = invoke("interpolate", "lbp", *photos(HELD_OUT), "--steps", 2, "--out", tmp_path / "i.png")
    assert "shipped lbp decoder" in output and (tmp_path / "i.png").exists()
    assert all("/" not in title.replace("photos in", "") for title in titles), titles


def test_report_takes_decoder_files_and_labels_columns_once(tmp_path, titles):
    runs = tmp_path / "decoders"
    runs.mkdir()
    os.symlink(pretrained.shipped_decoder("lbp"), runs / "lbp.h5")
    out = tmp_path / "report"
    invoke("report", "--runs", runs, "--data", folder_of(tmp_path, HELD_OUT), "--out", out, "--figure-images", 2)
    markdown = (out / "report.md").read_text()
    assert "columns: the photo, then lbp (shipped lbp decoder)." in markdown  # the label: "lbp", once
    assert "| baseline: linear (ridge) |" in markdown
    assert set(titles) == {"Reconstructions of photos in photos/"}
    assert report.find_runs() == sorted(pretrained.shipped_decoder(f) for f in ("hog", "lbp", "sift"))


def test_help_version_and_progress(tmp_path):
    assert "Usage: main eval" in invoke("eval", "-h")
    assert "Usage: main" in invoke("-h")
    assert invoke("--version").startswith("featinv 0.1.0")
    output = invoke("eval", "lbp", "--data", folder_of(tmp_path, HELD_OUT))
    assert "evaluating [" in output and "2/2" in output


def test_optimisation_with_random_weights_says_so(tmp_path, titles):
    output = invoke("invert-optimize", "conv5", photos(HELD_OUT)[0], "--iters", 1, "--out", tmp_path / "o.png")
    assert "random weights" in output
    assert titles and titles[0].endswith("AlexNet with random weights")


def test_shipped_files_carry_their_baselines_and_training_photos_and_no_local_path():
    for feature in ("hog", "sift", "lbp"):
        path = pretrained.shipped_decoder(feature)
        assert os.path.getsize(path) < 12.25 * 2 ** 20
        _, _, attrs = pretrained.read_decoder_file(path)
        assert attrs["held_out"]["photos"] == 64
        models, record, digests = pretrained.read_decoder_extras(path)
        assert len(digests) == 1992 and set(models) == {"mean image", "linear (ridge)"}
        # SIFT's 136,192 features leave room for one component of the ridge within the file's budget
        assert record["components"] == (1 if feature == "sift" else 64)
        with h5py.File(path, "r") as f:
            dtypes = set()
            f["baselines"].visititems(lambda name, obj: dtypes.add(obj.dtype) if isinstance(obj, h5py.Dataset) else None)
            assert dtypes == {np.dtype(np.float16)}
