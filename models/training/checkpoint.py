"""Training checkpoints in HDF5, written atomically (nn.serialization.write_h5).

Layout: ``model/<layer>/<weight|bias>`` (the trained weights), ``optimizer/state/<i>/<name>`` (the
optimiser's state per parameter index: Adam's ``exp_avg``, ``exp_avg_sq``, ``step``);
for a run that averages its weights (``--ema``) ``averaged/<layer>/...``, the moving average, which
is the decoder that reconstructs (:func:`decoder_group`); for the autoencoder variant
``encoder/<layer>/...`` (the fine-tuned CaffeNet, in the same file so that decoder and encoder are
always saved together); root attributes ``step``,
``config`` (JSON), ``param_groups`` (JSON: the optimiser's groups without their tensors, as in its
state_dict()), ``scheduler`` (JSON), ``random_state`` (JSON of the
library's generator), ``history`` (JSON: the validation errors so far).
"""
import contextlib
import json

from nn import random
from nn.backend import to_numpy
from nn.serialization import (FORMAT, VERSION, WeightFileError, json_attr, open_h5, read_groups,
                              write_groups, write_h5)

from . import options
from .memory import check_memory
from .options import VALUE_BEFORE_OPTION


def save_checkpoint(path, model, optimizer, step, config, scheduler=None, history=None, encoder=None, averaged=None):
    opt_state = optimizer.state_dict()
    arrays = {f"state.{index}.{name}": to_numpy(value) for index, entries in opt_state["state"].items()
              for name, value in entries.items()}

    def fill(f):
        f.attrs.update(format=FORMAT, version=VERSION, kind="checkpoint", step=int(step),
                       config=json.dumps(config), param_groups=json.dumps(opt_state["param_groups"]),
                       scheduler=json.dumps(scheduler.state_dict() if scheduler else {}),
                       random_state=json.dumps(random.get_state()),
                       history=json.dumps(history or []))
        write_groups(f.create_group("model"), {k: to_numpy(v) for k, v in model.state_dict().items()})
        write_groups(f.create_group("optimizer"), arrays)
        if averaged is not None:
            write_groups(f.create_group("averaged"), {k: to_numpy(v) for k, v in averaged.state_dict().items()})
        if encoder is not None:
            write_groups(f.create_group("encoder"), {k: to_numpy(v) for k, v in encoder.state_dict().items()})

    write_h5(path, fill)


def decoder_group(f):
    """The group of the open checkpoint ``f`` that holds the decoder to reconstruct with: the
    weights' moving average where the run kept one (``--ema``), else the trained weights."""
    return "averaged" if "averaged" in f else "model"


def read_config(path):
    """The run configuration stored in a checkpoint (to rebuild its model)."""
    with open_h5(path) as f:
        return checkpoint_config(f, path)


def checkpoint_config(f, path):
    """The validated configuration of the open checkpoint ``f``."""
    if f.attrs.get("kind") != "checkpoint":
        raise WeightFileError(f"{path}: not a featinv training checkpoint (no 'kind=checkpoint' "
                              "attribute); pass a file written by 'cli.py train'")
    return validate_config(json_attr(f, "config", path), path)


def validate_config(config, path):
    """A run configuration from a file, checked: every option it holds against the options' table
    (:mod:`.options`), what rebuilding its decoder reads, and the memory that decoder needs
    (:func:`.memory.check_memory`); an option the file predates is given its earlier value
    (``VALUE_BEFORE_OPTION``)."""
    if not isinstance(config, dict):
        raise WeightFileError(f"{path}: its configuration is a {type(config).__name__}, not a mapping; re-create the file")
    config = {**VALUE_BEFORE_OPTION, **config}

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    problems = {key: options.problem(options.BY_NAME[key], value) for key, value in config.items()
                if key in options.BY_NAME}
    problems.update({key: "expected the shape of one feature map" for key in ("feature_shape",) if key in config
                     and not (isinstance(config[key], list) and 1 <= len(config[key]) <= 3
                              and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d < 1 << 20
                                      for d in config[key]))})
    problems.update({key: "expected a number or one number per channel" for key in ("feature_scale",) if key in config
                     and not (number(config[key]) or (isinstance(config[key], list)
                                                      and all(number(x) for x in config[key])))})
    for key, problem in problems.items():
        if problem:
            raise WeightFileError(f"{path}: its configuration has an invalid {key} ({config[key]!r}: {problem}); "
                                  "the file is damaged or not featinv's: re-create it")
    missing = [key for key in ("feature", "width", "feature_shape", "feature_scale") if key not in config]
    if missing:
        raise WeightFileError(f"{path}: its configuration lacks {', '.join(missing)}; re-create the file")
    check_memory(config, source=path, training=False)
    return config


def load_checkpoint(path, model, optimizer=None, scheduler=None, encoder=None, averaged=None):
    """Restore a run to continue it: model (the trained weights) and, where given, the optimiser,
    scheduler, fine-tuned encoder and moving average (nn.optim.ExponentialMovingAverage), and the
    random state; returns (step, history)."""
    with _reading(path, "re-create it, or resume from another one") as f:
        return _restore(f, path, model, optimizer, scheduler, encoder, averaged)


def load_decoder_weights(path, model, encoder=None):
    """Restore the decoder a checkpoint reconstructs with (:func:`decoder_group`) into ``model``,
    and with ``encoder`` the CaffeNet fine-tuned with it."""
    with _reading(path, "re-create it") as f:
        model.load_state_dict(read_groups(f[decoder_group(f)]), source=str(path))
        if encoder is not None:
            encoder.load_state_dict(read_groups(f["encoder"]), source=f"{path} (encoder)")


@contextlib.contextmanager
def _reading(path, remedy):
    """The checkpoint at ``path``, opened (its checksum verified) and its configuration validated;
    a group or attribute missing or misshapen in what the block reads is one WeightFileError
    naming the file and ``remedy``."""
    with open_h5(path) as f:
        checkpoint_config(f, path)
        try:
            yield f
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise WeightFileError(f"{path}: malformed checkpoint ({type(exc).__name__}: {exc}); {remedy}") from None


def _restore(f, path, model, optimizer, scheduler, encoder, averaged):
    if "model" not in f:
        raise WeightFileError(f"{path}: the checkpoint has no 'model' group; re-create it")
    model.load_state_dict(read_groups(f["model"]), source=str(path))
    if optimizer is not None:
        optimizer.load_state_dict(_optimizer_state(f, path, optimizer))
    if scheduler is not None:
        scheduler.load_state_dict(_scheduler_state(json_attr(f, "scheduler", path), optimizer))
    if encoder is not None:
        encoder.load_state_dict(read_groups(f["encoder"]), source=f"{path} (encoder)")
    if averaged is not None:
        if "averaged" not in f:
            raise WeightFileError(f"{path}: holds no moving average of the weights (it was trained without "
                                  "--ema); resume it without --ema")
        averaged.load_state_dict(read_groups(f["averaged"]), source=f"{path} (averaged)")
    try:
        random.set_state(json_attr(f, "random_state", path))
    except (ValueError, TypeError, KeyError) as exc:
        raise WeightFileError(f"{path}: its random state is malformed ({exc}); re-create the checkpoint") from None
    return int(f.attrs["step"]), json_attr(f, "history", path, list)


# Files written before parameter groups: Adam's state names, one lr and one step count for all.
EARLIER_STATE_NAMES = {"m": "exp_avg", "v": "exp_avg_sq", "momentum": "momentum_buffer"}


def _optimizer_state(f, path, optimizer):
    """The optimiser's state_dict() as the checkpoint holds it."""
    state = {}
    for key, value in read_groups(f["optimizer"]).items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[EARLIER_STATE_NAMES.get(name, name)] = value
    if "param_groups" in f.attrs:
        return {"state": state, "param_groups": json_attr(f, "param_groups", path, list)}
    for entries in state.values():
        entries.setdefault("step", int(f.attrs["optimizer_step"]))
    groups = [dict(group, lr=float(f.attrs["lr"])) for group in optimizer.state_dict()["param_groups"]]
    return {"state": state, "param_groups": groups}


def _scheduler_state(state, optimizer):
    """A schedule's state_dict(); an earlier file's ``{base_lr, count}`` becomes its equivalent."""
    if "count" not in state:
        return state
    for group in optimizer.param_groups:
        group["initial_lr"] = state["base_lr"]
    groups = len(optimizer.param_groups)
    return {"base_lrs": [state["base_lr"]] * groups, "last_epoch": state["count"], "_step_count": state["count"] + 1,
            "_last_lr": [group["lr"] for group in optimizer.param_groups]}
