"""The options table (models/training/options.py): every place a training option appears is derived
from it and agrees with it; sizes are checked against memory before any work; bad values name the
option, or the file and the key."""
import dataclasses
import inspect
import json
import os
import re

import h5py
import pytest
from click.testing import CliRunner

import nn
from cli import main
from models.data.extract import build_cache
from models.evaluation import pretrained
from models.networks import decoders
from models.networks.decoders import REPRESENTATIONS
from models.training import checkpoint, memory, options
from models.training.train import CPU_PRESETS, PRESETS, RUN_DEFINING, TrainConfig, train
from nn.errors import OptionError, WeightFileError
from tests.conftest import sample_folder


def test_the_presets_keep_their_values():
    assert PRESETS == {
        "paper": dict(width=1.0, image_size=None, batch_size=64, lr=1e-3, iters=300_000, val_every=5000,
                      checkpoint_every=5000, flip=False, crops=0, min_scale=0.5, colour_jitter=0.0, grad_clip=0,
                      channel_scale=False, feature_dtype="float32", min_channels=1, lr_schedule="step", ema=0.0),
        "cpu": dict(width=0.125, image_size=64, batch_size=8, lr=1e-3, iters=600, val_every=50, checkpoint_every=100,
                    flip=True, crops=64, min_scale=0.5, colour_jitter=0.0, grad_clip=0, channel_scale=False,
                    feature_dtype="float32", min_channels=1, lr_schedule="step", ema=0.0)}
    assert CPU_PRESETS == {
        "hog": dict(width=0.5, batch_size=16, iters=3500, val_every=100, checkpoint_every=500, crops=128,
                    min_scale=0.25, grad_clip=5000, ema=0.998),
        "sift": dict(image_size=128, width=0.25, batch_size=16, iters=1800, val_every=100, checkpoint_every=500,
                     crops=128, min_scale=0.35, grad_clip=20000, channel_scale=True, min_channels=32, ema=0.995),
        "lbp": dict(image_size=128, width=0.25, batch_size=16, iters=3000, val_every=100, checkpoint_every=500,
                    crops=64, min_scale=0.5, grad_clip=20000)}


def test_every_derived_place_follows_the_table():
    names = [o.name for o in options.OPTIONS]
    assert [f.name for f in dataclasses.fields(TrainConfig)] == names
    assert set(RUN_DEFINING) == {"feature", "preset", "width", "min_channels", "image_size", "batch_size", "lr", "seed",
                                 "crops", "min_scale", "colour_jitter", "channel_scale", "grad_clip", "flip", "data",
                                 "val", "weights", "train_encoder", "feature_dtype", "lr_schedule", "ema"}
    assert set(pretrained.TRAINING_KEYS) == {"preset", "width", "min_channels", "image_size", "batch_size", "lr", "iters",
                                             "crops", "min_scale", "colour_jitter", "channel_scale", "grad_clip", "flip",
                                             "seed", "lr_schedule", "lr_drop_at", "ema"}
    assert checkpoint.VALUE_BEFORE_OPTION == {"min_channels": 1, "ema": 0.0}
    # the cache keywords are build_cache's own (all but what every call passes itself)
    keywords = set(inspect.signature(build_cache).parameters) - {"path", "files", "encoder", "progress"}
    assert set(options.cache_settings({o.name: None for o in options.OPTIONS})) == keywords
    flags = {p.name: p for p in main.commands["train"].params}
    assert set(flags) == {o.name for o in options.OPTIONS if o.cli} | {"feature"}


def _preset_values(help_text):
    """{(preset, feature or None): value text} read back from an option's help."""
    found = re.search(r"\[preset paper: (\S+); cpu: (\S+?)(?: \((.*)\))?\]$", help_text)
    values = {("paper", None): found.group(1), ("cpu", None): found.group(2)}
    for item in (found.group(3) or "").split(", "):
        if item:
            feature, value = item.split(": ")
            values[("cpu", feature)] = value
    return values


def test_the_help_shows_each_presets_real_values():
    """Every preset option's --help, read back, gives the value that feature and preset train with."""
    params = {p.name: p for p in main.commands["train"].params}
    checked = 0
    for o in options.OPTIONS:
        if not o.cli:
            continue
        assert params[o.name].help == options.help_text(o)
        if not o.preset:
            continue
        shown = _preset_values(params[o.name].help)
        for preset in options.PRESET_NAMES:
            for feature in REPRESENTATIONS:
                value = getattr(TrainConfig(feature=feature, preset=preset).resolved(), o.name)
                text = shown.get((preset, feature), shown[(preset, None)])
                assert text == options.format_value(value, o), (o.name, preset, feature)
                checked += 1
    assert checked > 100
    assert "[preset paper: 0; cpu: 64 (hog: 128, sift: 128, lbp: 64)]" in params["crops"].help


def test_train_prints_its_settings_and_where_they_come_from(tmp_path):
    photos = sample_folder(tmp_path / "photos", 6)
    lines = []
    settings = dict(feature="hog", data=str(photos), out=str(tmp_path / "run"), iters=2, batch_size=2, width=1 / 16,
                    image_size=64, val_every=2, checkpoint_every=2, workers=1, crops=0)
    train(TrainConfig(**settings), log=lines.append)
    table = lines[0].splitlines()
    assert table[0] == "settings:"
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in table[1:]}
    assert rows["--batch-size"] == ["2", "given"]
    assert rows["--min-scale"] == ["0.25", "preset cpu (hog)"] and rows["--lr"] == ["0.001", "preset cpu"]
    assert rows["--seed"] == ["0", "default"] and rows["feature"] == ["hog", "given"]
    lines.clear()
    train(TrainConfig(**dict(settings, iters=4, batch_size=None, resume=True)), log=lines.append)
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[0].splitlines()[1:]}
    assert rows["--batch-size"] == ["2", "resumed run"] and rows["--iters"] == ["4", "given"]
    result = CliRunner().invoke(main, ["train", "hog", "--data", str(photos), "--out", str(tmp_path / "cli"), "--iters",
                                       "1", "--batch-size", "2", "--width", "0.0625", "--image-size", "64", "--crops",
                                       "0", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert re.search(r"--width +0.0625 +command line", result.output)
    assert re.search(r"--grad-clip +5000 +preset cpu \(hog\)", result.output)


@pytest.mark.parametrize("argv, named", [(["--width", "64"], "--width 64"),
                                         (["--image-size", "1048576"], "--image-size 1048576"),
                                         (["--crops", "100000", "--max-memory", "1"], "--crops 100000")])
def test_sizes_beyond_the_memory_are_refused_before_any_work(argv, named, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "hog", "--out", str(out)] + argv)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: the settings") and named in error and "need an estimated" in error
    assert re.search(r"\d (GiB|TiB|PiB) \(parameters", error) and "--max-memory" in error
    assert not out.exists()  # nothing was created


def test_the_memory_estimate_and_its_budget(monkeypatch):
    values = options.resolved_values({f.name: None for f in dataclasses.fields(TrainConfig)} | {"feature": "hog"})
    parts = memory.estimate_memory(values)
    for feature, width, size, floor in (("hog", 0.5, 64, 1), ("sift", 0.25, 128, 32), ("fc8", 0.125, None, 1)):
        params, _ = memory.decoder_sizes(feature, width, size, floor)  # counted from the table, as built
        built = decoders.build(feature, width, size, min_channels=floor)
        assert params == sum(p.data.size for p in built.parameters()), feature
    assert parts["parameters"] == 4 * memory.decoder_sizes("hog", 0.5, 64)[0] * 5  # weights, gradients, Adam's two moments, the moving average
    assert 0 < memory.available_memory()
    monkeypatch.setenv("FEATINV_MAX_MEMORY", "0.001")
    with pytest.raises(OptionError, match="more than the 1.02 MiB available"):
        memory.check_memory(values)
    monkeypatch.setenv("FEATINV_MAX_MEMORY", "0")
    memory.check_memory(dict(values, width=64.0))  # 0: no check
    monkeypatch.setenv("FEATINV_MAX_MEMORY", "lots")
    with pytest.raises(OptionError, match="FEATINV_MAX_MEMORY='lots'"):
        memory.check_memory(values)


def _tiny_checkpoint(path, **config):
    from models.training.checkpoint import save_checkpoint
    model = decoders.build("hog", 1 / 16, 64, in_channels=31)
    base = {"feature": "hog", "width": 1 / 16, "image_size": 64, "feature_shape": [31, 8, 8], "feature_scale": 1.0}
    save_checkpoint(str(path), model, nn.optim.Adam(model.parameters()), 1, base)
    with h5py.File(path, "a") as f:
        f.attrs["config"] = json.dumps(dict(base, **config))
    nn.serialization.seal_file(str(path))  # edited by hand: sealed again, as cli.py seal does
    return str(path)


def test_a_checkpoint_whose_settings_need_too_much_memory_is_refused_naming_it(tmp_path):
    path = _tiny_checkpoint(tmp_path / "checkpoint.h5", width=50)
    with pytest.raises(OptionError, match=re.escape(f"{path}: its settings (--width 50") + ".*need an estimated"):
        checkpoint.read_config(path)
    result = CliRunner().invoke(main, ["reconstruct", "hog", os.path.join("models", "data", "sample", "x.jpg"),
                                       "--checkpoint", path])
    assert result.exit_code == 1 and "Traceback" not in result.output and path in result.output


def test_a_bad_value_in_a_checkpoint_names_the_file_and_the_key(tmp_path):
    path = _tiny_checkpoint(tmp_path / "checkpoint.h5", lr="fast")
    with pytest.raises(WeightFileError, match=re.escape(f"{path}: its configuration has an invalid lr ('fast': "
                                                        "expected a finite number)")):
        checkpoint.read_config(path)


def test_a_bad_option_value_names_the_option():
    result = CliRunner().invoke(main, ["train", "hog", "--seed", "-1"])
    assert result.exit_code == 2 and "'--seed'" in result.output
    with pytest.raises(OptionError, match=r"--seed -1: expected an integer in \[0, 4294967295\]"):
        TrainConfig(feature="hog", seed=-1).resolved()
    with pytest.raises(OptionError, match="--width '0.5': expected a finite number"):
        TrainConfig(feature="hog", width="0.5").resolved()
    with pytest.raises(OptionError, match="--preset 'fast': expected one of paper, cpu"):
        TrainConfig(feature="hog", preset="fast").resolved()
