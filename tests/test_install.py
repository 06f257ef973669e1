"""featinv installed as a package (``pip install .``, not ``-e``): its data travel with it.

The project is installed without dependencies into a temporary folder, from a copy of its sources,
and used from another folder with only that folder on ``PYTHONPATH``: the bundled photos (the
default ``--data``), the shipped decoders and ImageNet's class names must be found there, and
the command line must start (``python -m cli`` and the ``featinv`` console script).
"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("setup.py", "README.md", "cli.py", "nn", "minifeat", "models", "weights_import")

CHECK = """
import glob, os
import models, cli
from models.training.train import SAMPLE_DATA
from models.evaluation.inference import load_decoder
from models.evaluation.pretrained import shipped_decoder
from models.networks.imagenet_classes import CLASS_NAMES
installed = os.path.dirname(os.path.dirname(os.path.abspath(models.__file__)))
assert installed == os.path.abspath({target!r}), (installed, {target!r})
photos = glob.glob(os.path.join(SAMPLE_DATA, "*.jpg"))
assert SAMPLE_DATA.startswith(installed) and len(photos) == 29, (SAMPLE_DATA, len(photos))
for feature in ("hog", "sift", "lbp"):
    assert shipped_decoder(feature).startswith(installed), shipped_decoder(feature)
decoder = load_decoder(feature="hog")
assert decoder.feature == "hog"
assert len(CLASS_NAMES) == 1000 and CLASS_NAMES[1] == "goldfish"
print("ok")
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(target folder, the environment to run from it) of a non-editable install."""
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip("pip is not available to this Python, so the project cannot be installed here")
    work = tmp_path_factory.mktemp("install")
    source, target = work / "source", work / "target"
    source.mkdir()
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                             "--no-index", "--target", str(target), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    return target, env, elsewhere


def test_the_installed_package_finds_its_data(installed):
    target, env, elsewhere = installed
    result = subprocess.run([sys.executable, "-c", CHECK.format(target=str(target))], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr


def test_the_installed_command_line_starts(installed):
    target, env, elsewhere = installed
    result = subprocess.run([sys.executable, "-m", "cli", "train", "--help"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "FEATURE" in result.stdout, result.stdout + result.stderr
    script = target / "bin" / "featinv"
    assert script.exists(), sorted(os.listdir(target))
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "reconstruct" in result.stdout, result.stdout + result.stderr
