"""Every training option, declared once: :data:`OPTIONS`.

One :class:`Option` record holds all that featinv knows of a setting: its type and range, its
value in each preset (the ``cpu`` preset per feature), its help, and the parts of the program it
reaches. Everything else is derived from this table, so that no two places can disagree:

- ``cli.py train``'s options and their ``--help`` (:func:`help_text`: each preset's real values);
- :class:`models.training.train.TrainConfig`'s fields (:func:`config_fields`) and their check
  (:func:`problem`);
- the presets ``PRESETS`` and ``CPU_PRESETS`` (:func:`presets`, :func:`cpu_presets`);
- ``--resume``'s rule: a run-defining option (``run``) is taken from the run's checkpoint when
  not given, and refused when given another value (:data:`RUN_DEFINING`); the others may change;
  a checkpoint older than an option gets the value every run had before it (:data:`VALUE_BEFORE_OPTION`);
- the settings a decoder file records (``recorded``, :data:`TRAINING_KEYS`);
- the keywords the feature cache is built with (``cache``: :func:`cache_settings`);
- the table of settings ``train`` prints at the start, with where each value came from (:func:`settings_table`).

Options that set a size (``sizes``) are checked against the memory they imply before any work
(:mod:`models.training.memory`).
"""
import dataclasses
import math
import os

from nn.errors import OptionError

from ..networks.decoders import REPRESENTATIONS, SHALLOW_IMAGE_SIZE

SAMPLE_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sample")
PRESET_NAMES = ("paper", "cpu")
UNSET = "unset"  # an Option field no preset or default fills


@dataclasses.dataclass(frozen=True)
class Option:
    """One training option.

    ``paper``, ``cpu``: its value in those presets (``UNSET``: the presets leave it alone);
    ``by_feature``: the ``cpu`` preset's value for some features ({"hog": 128}), the others taking ``cpu``;
    ``default``: its value when neither given nor set by a preset;
    ``minimum``/``maximum`` (``*_open``: excluded), ``choices``: the values it accepts;
    ``switch``: a boolean given as ``--name/--no-name`` (else a boolean is a flag, off by default);
    ``run``: it defines the run (``--resume`` takes it from the checkpoint and refuses a change);
    ``cache``: the keyword of :func:`models.data.extract.build_cache` it is passed as;
    ``recorded``: a decoder file records it; ``before``: the value of runs older than the option;
    ``sizes``: it sets a size, so its memory is checked; ``cli``: ``train`` has an option for it;
    ``none``: what the value None means, for the help.
    """
    name: str
    type: type
    help: str
    paper: object = UNSET
    cpu: object = UNSET
    by_feature: dict = dataclasses.field(default_factory=dict)
    default: object = None
    minimum: float = None
    maximum: float = None
    min_open: bool = False
    max_open: bool = False
    choices: tuple = None
    path: bool = False
    switch: bool = False
    run: bool = False
    cache: str = None
    recorded: bool = False
    before: object = UNSET
    sizes: bool = False
    cli: bool = True
    envvar: str = None
    none: str = None

    @property
    def flag(self):
        """The command-line spelling: ``--batch-size``."""
        return "--" + self.name.replace("_", "-")

    @property
    def preset(self):
        """Whether the presets set it."""
        return self.paper is not UNSET

    def preset_value(self, preset, feature):
        """Its value in ``preset`` for ``feature`` (UNSET where the presets leave it alone)."""
        if preset == "cpu":
            return self.by_feature.get(feature, self.cpu)
        return self.paper


OPTIONS = (
    Option("feature", str, "The representation to invert.", choices=tuple(REPRESENTATIONS), run=True, cli=False),
    Option("data", str, "Folder of training photos (default: the bundled samples).", default=SAMPLE_DATA, path=True,
           run=True),
    Option("val", str, "Folder of validation photos (default: 10% of --data).", path=True, run=True),
    Option("preset", str, "Settings to start from.", default="cpu", choices=PRESET_NAMES, run=True, recorded=True),
    Option("batch_size", int, "Samples per step.", paper=64, cpu=8, by_feature={"hog": 16, "sift": 16, "lbp": 16},
           minimum=1, run=True, recorded=True, sizes=True),
    Option("lr", float, "Adam's learning rate (one too high for the run stops it at the first NaN loss).",
           paper=1e-3, cpu=1e-3, minimum=0, min_open=True, run=True, recorded=True),
    Option("epochs", int, "Train this many passes over the training samples (instead of --iters).", minimum=1),
    Option("iters", int, "Training steps.", paper=300_000, cpu=600,
           by_feature={"hog": 3500, "sift": 1800, "lbp": 3000}, minimum=1, recorded=True),
    Option("width", float, "Channel width multiplier of the decoder.", paper=1.0, cpu=0.125,
           by_feature={"hog": 0.5, "sift": 0.25, "lbp": 0.25}, minimum=0, min_open=True, maximum=64, run=True,
           recorded=True, sizes=True),
    Option("min_channels", int, "No hidden layer of the decoder narrower than this.", paper=1, cpu=1,
           by_feature={"sift": 32}, minimum=1, maximum=1 << 16, run=True, recorded=True, before=1, sizes=True),
    Option("image_size", int, "Photo size for shallow features (multiple of 64).", paper=None, cpu=64,
           by_feature={"sift": 128, "lbp": 128}, minimum=64, run=True, recorded=True, sizes=True,
           none=f"{SHALLOW_IMAGE_SIZE}"),
    Option("weights", str, "CaffeNet HDF5 weights (from import-weights) for AlexNet features.", path=True, run=True),
    Option("flip", bool, "Mirror training photos: flipped copies, or with --crops half the crops at random.",
           paper=False, cpu=True, switch=True, run=True, cache="flip", recorded=True),
    Option("crops", int, "Random crops per training photo, at several scales, each flipped at random with --flip "
           "(0: the whole photo).", paper=0, cpu=64, by_feature={"hog": 128, "sift": 128, "lbp": 64},
           minimum=0, maximum=100_000, run=True, cache="crops", recorded=True, sizes=True),
    Option("min_scale", float, "Smallest crop side, as a fraction of the photo's short side.", paper=0.5, cpu=0.5,
           by_feature={"hog": 0.25, "sift": 0.35, "lbp": 0.5}, minimum=0, min_open=True, maximum=1, run=True,
           cache="min_scale", recorded=True),
    Option("colour_jitter", float, "Random gain exp(U(-J, J)) per colour channel of each crop.", paper=0.0, cpu=0.0,
           minimum=0, maximum=5, run=True, cache="colour_jitter", recorded=True),
    Option("channel_scale", bool, "Scale each feature channel to unit RMS instead of all channels by one factor.",
           paper=False, cpu=False, by_feature={"sift": True}, switch=True, run=True, recorded=True),
    Option("grad_clip", float, "Clip the joint gradient norm to this (0: no clipping).", paper=0, cpu=0,
           by_feature={"hog": 5000, "sift": 20000, "lbp": 20000}, minimum=0, run=True, recorded=True),
    Option("lr_schedule", str, "step: the learning rate divided by 10 after 80% of the steps; cosine: "
           "lowered smoothly to 0 at the last step.", paper="step", cpu="step", choices=("step", "cosine"),
           run=True, recorded=True),
    Option("lr_drop_at", float, "The step schedule divides the learning rate by 10 after this fraction of the run.",
           default=0.8, minimum=0, maximum=1, recorded=True, cli=False),
    Option("ema", float, "Validate, keep as best.h5 and reconstruct with a moving average of the weights of this "
           "decay (0.999: about the last 1000 steps; 0: the trained weights).", paper=0.0, cpu=0.0,
           by_feature={"hog": 0.998, "sift": 0.995}, minimum=0, maximum=1, max_open=True, run=True, recorded=True,
           before=0.0),
    Option("threads", int, "BLAS threads (default 1: safe when other jobs share the cores).", minimum=1, maximum=1024),
    Option("seed", int, "Random seed of the split, crops, weights and batches.", default=0, minimum=0,
           maximum=2 ** 32 - 1, run=True, cache="seed", recorded=True),
    Option("workers", int, "Processes for feature extraction (default: all cores).", minimum=1, maximum=1024),
    Option("feature_dtype", str, "How the feature cache stores the features (float16: half the bytes; "
           "docs/SCALE.md measures the cost).", paper="float32", cpu="float32", choices=("float32", "float16"),
           run=True, cache="feature_dtype"),
    Option("scheduler", str, "Build the feature cache on Dask: 'local' (a local cluster of --workers processes) or a "
           "scheduler address such as tcp://HOST:8786 (needs the cluster extra and a shared file system).",
           cache="scheduler"),
    Option("val_every", int, "Validate every this many steps.", paper=5000, cpu=50,
           by_feature={"hog": 100, "sift": 100, "lbp": 100}, minimum=1, cli=False),
    Option("checkpoint_every", int, "Save a checkpoint every this many steps.", paper=5000, cpu=100,
           by_feature={"hog": 500, "sift": 500, "lbp": 500}, minimum=1, cli=False),
    Option("log_every", int, "Read the losses back from the device (one synchronisation) every this many steps.",
           default=10, minimum=1, cli=False),
    Option("val_fraction", float, "The fraction of --data held out for validation.", default=0.1, minimum=0,
           maximum=1, cli=False),
    Option("max_val_images", int, "Validate on every held-out photo, up to this many.", default=256, minimum=1,
           cli=False, sizes=True),
    Option("device", str, "Run on the CPU (NumPy) or the GPU (CuPy).", default="cpu", choices=("cpu", "gpu"),
           envvar="FEATINV_DEVICE"),
    Option("max_memory", float, "Refuse settings whose estimated memory exceeds this many GiB (default: the memory "
           "available when the run starts; 0: no check).", minimum=0, envvar="FEATINV_MAX_MEMORY"),
    Option("out", str, "Run folder (default: runs/FEATURE).", path=True),
    Option("resume", bool, "Continue from the run folder's checkpoint (options not given are the run's; a given one "
           "that differs is refused).", default=False),
    Option("reference", bool, "Compute convolutions as their plain definitions (nn/functional/conv_reference.py): "
           "the same results, slowly; for study.", default=False),
    Option("overwrite", bool, "Replace the finished run in --out (train refuses otherwise).", default=False),
    Option("train_encoder", bool, "Autoencoder variant: fine-tune CaffeNet up to FEATURE together with the decoder.",
           default=False, run=True, cache="keep_photos"),
)
BY_NAME = {option.name: option for option in OPTIONS}

RUN_DEFINING = tuple(o.name for o in OPTIONS if o.run)
TRAINING_KEYS = tuple(o.name for o in OPTIONS if o.recorded)
VALUE_BEFORE_OPTION = {o.name: o.before for o in OPTIONS if o.before is not UNSET}


def presets():
    """``{preset: {option: value}}``: every option each preset sets (the ``cpu`` one before its per-feature values)."""
    return {name: {o.name: o.preset_value(name, None) for o in OPTIONS if o.preset} for name in PRESET_NAMES}


def cpu_presets():
    """``{feature: {option: value}}``: the ``cpu`` preset's values for one feature, on top of :func:`presets`."""
    features = [f for f in REPRESENTATIONS if any(f in o.by_feature for o in OPTIONS)]
    return {f: {o.name: o.by_feature[f] for o in OPTIONS if f in o.by_feature} for f in features}


def config_fields():
    """TrainConfig's fields, ``(name, type, dataclasses.field)``: ``feature`` first and required;
    an option that a preset sets or a resume takes is None until resolved (None: not given)."""
    return [(o.name, o.type) if o.name == "feature" else (o.name, o.type, dataclasses.field(default=field_default(o)))
            for o in OPTIONS]


def field_default(option):
    """TrainConfig's default of ``option``: None (not given) where a preset or a resumed run may
    fill it in, else its default (a flag is off)."""
    return None if option.preset or (option.run and option.type is not bool) else option.default


def resolved_values(values):
    """``values`` (a TrainConfig's fields) with every option not given filled from its preset or its
    default; a preset that is not one raises OptionError."""
    values = dict(values)
    name = values["preset"] or BY_NAME["preset"].default
    if name not in PRESET_NAMES:
        raise OptionError(f"--preset {name!r}: expected one of {', '.join(PRESET_NAMES)}")
    values["preset"] = name
    for o in OPTIONS:
        if values.get(o.name) is None:
            value = o.preset_value(name, values["feature"])
            values[o.name] = o.default if value is UNSET else value
    return values


def _number(value, kind):
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind is int else isinstance(value, (int, float)) and math.isfinite(value)


def problem(option, value):
    """What is wrong with ``value`` for ``option`` (None: nothing); None passes where it has a meaning."""
    if value is None:
        return None if option.name != "feature" else "expected one of " + ", ".join(option.choices)
    if option.type is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if option.type is str:
        if not isinstance(value, str):
            return "expected a string"
        if option.choices and value not in option.choices:
            return "expected one of " + ", ".join(option.choices)
        return None
    if not _number(value, option.type):
        return "expected an integer" if option.type is int else "expected a finite number"
    low = option.minimum is not None and (value <= option.minimum if option.min_open else value < option.minimum)
    high = option.maximum is not None and (value >= option.maximum if option.max_open else value > option.maximum)
    if low or high:
        return f"expected {range_text(option)}"
    return None


def range_text(option):
    """``a number in (0, 64]``, ``a non-negative integer``, ...: the values ``option`` accepts."""
    what = "integer" if option.type is int else "number"
    if option.minimum == 0 and not option.min_open and option.maximum is None:
        return f"a non-negative {what}"
    if option.maximum is None:
        return f"a{'n' if what == 'integer' else ''} {what} {'>' if option.min_open else '>='} {format_value(option.minimum)}"
    return (f"a{'n' if what == 'integer' else ''} {what} in {'(' if option.min_open else '['}{format_value(option.minimum)}, "
            f"{format_value(option.maximum)}{')' if option.max_open else ']'}")


def check_values(values):
    """Raise OptionError naming the option for the first value ``values`` holds that the table refuses."""
    for o in OPTIONS:
        message = problem(o, values.get(o.name))
        if message:
            raise OptionError(f"{o.flag if o.cli else o.name} {values.get(o.name)!r}: {message}")


def cache_settings(values):
    """``{build_cache keyword: value}`` of the options that reach the feature cache."""
    return {o.cache: values[o.name] for o in OPTIONS if o.cache}


# --- what the user reads: help and the settings table ---------------------------------------------

def format_value(value, option=None):
    if value is None:
        return option.none if option is not None and option.none else "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def preset_text(option):
    """``preset paper: 0; cpu: 64 (hog: 128, sift: 128, lbp: 64)``: the values the presets give ``option``."""
    cpu = format_value(option.cpu, option)
    if option.by_feature:
        cpu += " (" + ", ".join(f"{f}: {format_value(v, option)}" for f, v in option.by_feature.items()) + ")"
    return f"preset paper: {format_value(option.paper, option)}; cpu: {cpu}"


def help_text(option):
    """The ``--help`` text of ``option``: its help, then the presets' values (or its default)."""
    if option.preset:
        return f"{option.help} [{preset_text(option)}]"
    if option.default is not None and option.type is not bool and not option.path:
        return f"{option.help} [default: {format_value(option.default, option)}]"
    return option.help


def sources(given, saved, resolved):
    """``{option: where its value comes from}``: "given" (``given``, the options as passed), "resumed
    run" (``saved``, the checkpoint's settings), "preset cpu (hog)", "preset paper" or "default"."""
    where = {}
    for o in OPTIONS:
        value = given.get(o.name)
        if o.name == "feature" or (value is not None and value != field_default(o)):
            where[o.name] = "given"
        elif o.run and o.name in saved:
            where[o.name] = "resumed run"
        elif o.preset:
            preset = resolved["preset"]
            per_feature = preset == "cpu" and resolved["feature"] in o.by_feature
            where[o.name] = f"preset {preset}" + (f" ({resolved['feature']})" if per_feature else "")
        else:
            where[o.name] = "default"
    return where


def settings_table(given, saved, resolved, given_as="command line"):
    """The settings a run trains with, one line per option: the option, its value and where it came
    from (``given_as``: how the given options were given)."""
    where = sources(given, saved, resolved)
    rows = [(o.flag if o.cli else o.name, format_value(resolved[o.name], o),
             given_as if where[o.name] == "given" else where[o.name]) for o in OPTIONS]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"  {a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows]
    return "settings:\n" + "\n".join(lines)
