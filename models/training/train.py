"""Training a decoder: data, loop, validation, checkpoints, logs and figures (the paper's training setup).

``train(TrainConfig(...))`` runs the whole job that ``cli.py train`` starts:

1. find the photos, split them by file into training and validation sets, and build (or reuse)
   the HDF5 feature caches (:mod:`models.data.cache`);
2. build the decoder (:mod:`models.networks.decoders`) and Adam; with ``resume``, restore the last
   checkpoint (model, optimiser, schedule, random state, step);
3. for each step: the batch of step t is a fixed function of (seed, t), so a resumed run sees
   exactly the batches an uninterrupted one would; the next batch is read in a background thread
   while the current one trains; the loss stays on the device and is read back every
   ``log_every`` steps (one host-device synchronisation for all of them);
4. every ``val_every`` steps: the normalised reconstruction error on the validation set, a line in
   ``log.csv``, ``loss.png`` and a grid ``recon_<step>.png`` (input | reconstruction);
5. checkpoints every ``checkpoint_every`` steps, at the end, and on Ctrl-C; a NaN or infinite loss
   stops the run with a message and leaves the last good checkpoint in place.

The autoencoder variant (``train_encoder``, AlexNet features only): CaffeNet up to the inverted
layer is trained together with the decoder, one Adam over both. The loss is the same Euclidean
loss, of decoder(s * phi_theta(x)) against the target, and its gradient flows through the decoder
into the encoder's weights theta (LRN, pooling and grouped convolutions all backpropagate). The cache
keeps the photos, since phi_theta changes at every step; the fine-tuned CaffeNet is saved in the
checkpoint itself (group ``encoder/``), from which :class:`models.evaluation.inference.TrainedDecoder` and
``--resume`` restore it.
"""
import contextlib
import csv
import dataclasses
import fcntl
import json
import math
import os
import queue
import signal
import threading
import time

import numpy as np

import nn
import nn.functional as F
from nn.errors import OptionError, UserError
from nn.serialization import DiskFullError, WeightFileError, verify_seal

from ..networks import alexnet, decoders
from . import distributed, options
from ..scoring.baselines import baseline_errors, fit_baselines
from ..data.cache import FeatureCache, run_cache
from ..data.extract import build_cache
from .checkpoint import load_checkpoint, read_config, save_checkpoint
from .memory import check_memory
from .options import RUN_DEFINING, SAMPLE_DATA  # noqa: F401 - SAMPLE_DATA: where the bundled photos are
from ..data.encoders import Encoder, reconstruct_batches, scale_array, targets_to_float
from ..data.images import find_images, header_problem
from ..display.figures import write_reconstruction_figure
from ..scoring.metrics import normalized_error
from ..display.plot import plot_curves
from ..display.progress import ProgressBar

PRESETS = options.presets()  # the paper's scale, and minutes on 2 CPU cores (docs/results/README.md)
CPU_PRESETS = options.cpu_presets()  # per feature, on top of PRESETS["cpu"]



class TrainingError(UserError):
    """A run that cannot go on (NaN loss, empty data); the message says what happened and what to do."""


class RunFolderError(TrainingError):
    """A run folder that cannot be trained into (in use, or holding another run); names it and the fix."""


class _TrainConfigMethods:
    """A training job's settings: one field per option of :data:`models.training.options.OPTIONS`
    (None: not given, filled in by :meth:`resolved` from the preset, or from the run by ``--resume``)."""

    def resolved(self):
        """A copy with the preset's values filled in where an option was not given, every value
        checked against the table (an OptionError names the option)."""
        values = options.resolved_values(dataclasses.asdict(self))
        options.check_values(values)
        if values["weights"]:  # stored in the checkpoint: must resolve from any working directory
            values["weights"] = os.path.abspath(values["weights"])
        values["out"] = values["out"] or os.path.join("runs", self.feature)
        if self.train_encoder and decoders.representation(self.feature).shallow:
            raise OptionError(f"--train-encoder needs an AlexNet feature (conv1..fc8); {self.feature} is "
                             "computed by minifeat, which is not differentiable")
        if values["ema"] and self.train_encoder:
            raise OptionError("--ema is not supported with --train-encoder (the encoder's weights are not averaged)")
        if values["channel_scale"] and self.train_encoder:
            raise OptionError("--channel-scale is not supported with --train-encoder (the fine-tuned encoder's "
                             "features are scaled by one factor)")
        return TrainConfig(**values)


TrainConfig = dataclasses.make_dataclass("TrainConfig", options.config_fields(), bases=(_TrainConfigMethods,),
                                         namespace={"__module__": __name__, "__doc__": _TrainConfigMethods.__doc__})


def learning_rate_schedule(optimizer, cfg, total_steps):
    """The run's schedule, stepped once per training step: "step" divides the rate by 10 after
    ``cfg.lr_drop_at`` of the steps (nn.optim.StepLR); "cosine" lowers it smoothly to 0 at the
    last step (nn.optim.CosineAnnealingLR)."""
    if cfg.lr_schedule == "cosine":
        return nn.optim.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return nn.optim.StepLR(optimizer, step_size=max(1, int(total_steps * cfg.lr_drop_at)), gamma=0.1)


def split_files(files, val_fraction, seed):
    """Hold out a fraction of the files for validation, chosen by a seeded shuffle: at least 5
    (the normalised error compares pairs of images), at most all but one."""
    order = np.random.default_rng(seed).permutation(len(files))
    n_val = min(len(files) - 1, max(5, int(round(len(files) * val_fraction))))
    val = sorted(files[i] for i in order[:n_val])
    train = sorted(files[i] for i in order[n_val:])
    return train, val


def batch_indices(step, batch_size, n, seed):
    """The sample indices of step ``step``: epoch e = step * B // n uses permutation(seed, e)."""
    indices = []
    position = step * batch_size
    while len(indices) < batch_size:
        epoch, offset = divmod(position, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        take = perm[offset:offset + batch_size - len(indices)]
        indices.extend(take.tolist())
        position += len(take)
    return np.array(indices)


class Prefetcher:
    """Prepares batch t+1 on the host (read from the cache, scaled) while batch t trains.

    The copy to the device is left to the training thread (:meth:`next` takes ``device``), so it
    is ordered on the training thread's stream before the step that uses it: a copy made here on
    another thread would race with it. :meth:`close` (also at an early stop) unblocks and ends the
    thread, so no batch is left held.
    """

    def __init__(self, make_batch, steps):
        self.queue = queue.Queue(maxsize=2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(make_batch, steps), daemon=True)
        self.thread.start()

    def _put(self, item):
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, make_batch, steps):
        for step in steps:
            try:
                item = make_batch(step)
            except Exception as exc:  # handed to the training thread, raised there
                self._put((step, exc))
                return
            if not self._put((step, item)):
                return

    def next(self, device):
        """(step, the batch's arrays copied to ``device``)."""
        step, item = self.queue.get()
        if isinstance(item, Exception):
            raise item
        return step, tuple(nn.to_device(a, device) for a in item)

    def close(self):
        self.stopping.set()
        while self.thread.is_alive():
            try:
                self.queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self.thread.join()


def feature_scale(cache, per_channel=False, limit=256):
    """1 / RMS of the training features, so every representation reaches the decoder at unit scale
    (a project decision: the paper is silent). With ``per_channel``, a list of one factor per channel:
    for SIFT's map, whose position and scale channels (values up to 4) would otherwise drown the
    descriptor's 128 channels (values about 0.1); a channel that is always 0 keeps factor 1."""
    # a seeded sample from the whole cache: its first rows are the crops of its first photos only
    rows = np.sort(np.random.default_rng(0).choice(len(cache), min(limit, len(cache)), replace=False))
    sample = np.asarray(cache.rows("features", rows), np.float64)
    if not per_channel:
        rms = float(np.sqrt(np.mean(np.square(sample))))
        return 1.0 / rms if rms > 0 else 1.0
    axes = (0,) + tuple(range(2, sample.ndim))
    rms = np.sqrt(np.mean(np.square(sample), axis=axes))
    return [float(1.0 / r) if r > 0 else 1.0 for r in rms]


def prepare_data(cfg, log=print):
    """Build the training and validation caches; returns (train cache, val cache, summary)."""
    files = find_images(cfg.data)
    if not files:
        raise TrainingError(f"{cfg.data}: no JPEG or PNG images found; pass --data with a folder of photos")
    problems = []
    if cfg.val:
        train_files, val_files = files, find_images(cfg.val)
    else:  # files whose header already says they are unusable are left out before the split
        problems = [(f, reason) for f, reason in zip(files, map(header_problem, files)) if reason]
        if problems:
            log(f"{len(problems)} unusable file(s) left out: " + "; ".join(reason for _, reason in problems[:5]))
        usable = sorted(set(files) - {f for f, _ in problems})
        if len(usable) < 2:
            raise TrainingError(f"{cfg.data}: {len(usable)} usable photo(s) of {len(files)} files; training needs "
                                "at least 2 (1 trained on, 1 held out), better hundreds")
        train_files, val_files = split_files(usable, cfg.val_fraction, cfg.seed)
    encoder = Encoder(cfg.feature, cfg.image_size, cfg.weights, cfg.workers, cfg.device)
    settings = options.cache_settings(dataclasses.asdict(cfg))  # what the cache is built with (the table's "cache")
    summary = {}
    for split, split_files_, unlike_train in (("train", train_files, {}), ("val", val_files, {"flip": False, "crops": 0})):
        path = run_cache(cfg.out, split)
        bar = ProgressBar(len(split_files_), label=f"{cfg.feature} features ({split}) ")
        try:
            info = build_cache(path, split_files_, encoder, progress=lambda i, n: bar.update(i),
                               **{**settings, **unlike_train})
        except KeyboardInterrupt:
            log(f"\ninterrupted during feature extraction: {path} keeps the shards done so far; the same command "
                "continues it")
            raise
        finally:
            bar.close()
        if split == "train":  # the files left out before the split count as skipped too
            info["skipped"] = problems + list(info["skipped"])
        summary[split] = info
        if info["skipped"]:
            log(f"{split}: skipped {len(info['skipped'])} unusable image(s): "
                + "; ".join(reason for _, reason in info["skipped"][:5]))
    return FeatureCache(run_cache(cfg.out, "train")), FeatureCache(run_cache(cfg.out, "val")), summary


class FineTunedEncoder:
    """The trainable encoder of the autoencoder variant: CaffeNet's layers up to the tap ``feature``.

    Dropout stays off (evaluation mode), so the features trained on are those inverted later (a project decision; the paper is silent).
    """

    def __init__(self, feature, weights, device):
        self.feature = feature
        self.encoder = Encoder(feature, weights=weights, device=device)
        layers = alexnet.PARAM_LAYERS[:alexnet.TAPS.index(feature) + 1]
        self.parameters = [p for name, p in self.encoder.network.named_parameters()
                           if name.split(".")[0] in layers]

    def inputs(self, cache, indices):
        """The network inputs (B, 3, 227, 227) of the cached photos ``indices`` (host array)."""
        return alexnet.prepare(cache.rows("photos", indices))

    def __call__(self, x):
        """Prepared photos (Tensor) -> features (Tensor), recorded for backward."""
        return self.encoder.network.features(x, (self.feature,))[self.feature]

    def features(self, cache, indices):
        """The current features of the cached photos ``indices`` (host array, no graph)."""
        return self.encoder.features(cache.rows("photos", indices))


def validate_baselines(train_cache, val_cache, limit):
    """``{baseline name: normalised error}`` on the validation photos (:mod:`models.scoring.baselines`)."""
    models = fit_baselines(train_cache)
    n = min(len(val_cache), limit)
    if n < 2:
        return {}
    errors, _ = baseline_errors(models, val_cache.rows("features", np.arange(n)), val_cache.rows("targets", np.arange(n)))
    return errors


def validate(model, cache, scale, device, limit, encoder=None):
    """(normalised error, targets, reconstructions) on the first ``limit`` samples of ``cache``;
    with ``encoder`` (a :class:`FineTunedEncoder`) the features are its current ones."""
    n = min(len(cache), limit)
    feats = cache.rows("features", np.arange(n)) if encoder is None else encoder.features(cache, np.arange(n))
    targs = cache.rows("targets", np.arange(n))
    recon = reconstruct_batches(model, feats, scale, device)
    error = normalized_error(targs.astype(np.float32), recon) if n >= 2 else float("nan")
    return error, targs, recon


RUN_OUTPUTS = ("checkpoint.h5", "best.h5", "log.csv", "summary.json", "loss.png", "val_error.png")


def _same(name, given, saved):
    if name in ("data", "val", "weights") and given is not None and saved is not None:
        return os.path.abspath(given) == os.path.abspath(saved)
    return given == saved or (isinstance(given, (int, float)) and isinstance(saved, (int, float))
                              and math.isclose(given, saved, rel_tol=1e-12))


def resumed_config(cfg, saved, out):
    """``cfg`` completed from the saved run's config ``saved``: every run-defining option not given
    is the saved one; a given one that differs is refused, naming it."""
    values = dataclasses.asdict(cfg)
    for name in RUN_DEFINING:  # what defines a run (models.training.options): the others may change
        if values[name] is None or name not in saved:
            values[name] = saved.get(name, values[name])
        elif not _same(name, values[name], saved[name]):
            flag = "--" + name.replace("_", "-")
            raise TrainingError(f"--resume: {flag} {values[name]!r} differs from the run in {out}, which was trained "
                                f"with {saved[name]!r}; resume without {flag}, or start a new run with another --out")
    return TrainConfig(**values)


class RunFolder:
    """A run folder belongs to one run: the run holds an exclusive lock (``flock``) on ``run.lock``,
    which names its process, for its whole life, and a finished run is replaced only on request
    (``overwrite``). The kernel drops the lock when its process ends, however it ends (SIGKILL
    included), so a lock file left by a killed run is simply taken over; no process ever deletes a
    lock file it does not hold."""

    def __init__(self, out, resume, overwrite):
        self.out, self.lock = out, os.path.join(out, "run.lock")
        os.makedirs(out, exist_ok=True)
        self._fd = self._acquire()
        try:
            checkpoint = os.path.join(out, "checkpoint.h5")
            if os.path.exists(checkpoint) and not resume:
                if not overwrite:
                    raise RunFolderError(f"{out} already holds a run ({checkpoint}); continue it with --resume, "
                                        "replace it with --overwrite, or choose another --out")
                for name in RUN_OUTPUTS + tuple(f for f in os.listdir(out) if f.startswith("recon_")):
                    if os.path.exists(os.path.join(out, name)):
                        os.remove(os.path.join(out, name))
            for name in os.listdir(out):  # half-written files of a killed run (nn.serialization.atomic_write)
                if name.startswith(".tmp-"):
                    os.remove(os.path.join(out, name))
        except BaseException:
            self.release()
            raise

    def _acquire(self):
        """The open, locked ``run.lock`` (its descriptor). A lock taken on a file that its owner
        removed while releasing it (the path now names another file, or none) locks nothing: retry."""
        while True:
            fd = os.open(self.lock, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderError(f"{self.out} is in use by another run (process {owner}, {self.lock}); "
                                     "wait for it, or choose another --out") from None
            except BaseException:
                os.close(fd)
                raise
            try:
                current = os.stat(self.lock)
            except FileNotFoundError:
                current = None
            if current is not None and current.st_ino == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
            os.close(fd)

    def release(self):
        """Remove ``run.lock`` while still holding its lock, then drop the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            os.remove(self.lock)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None


def train(cfg, log=print, on_step=None, given_as="given"):
    """Run (or resume) a training job; returns a summary dict (final loss, validation errors, paths).
    It starts by logging the settings it runs with and where each comes from (``given_as``: how
    the options of ``cfg`` were given, "command line" for cli.py).

    ``on_step(step)``, when given, is called after each step; returning True stops the run there
    with a checkpoint, as Ctrl-C does but without raising.
    """
    given = dataclasses.asdict(cfg)
    out = cfg.resolved().out
    checkpoint = os.path.join(out, "checkpoint.h5")
    saved = read_config(checkpoint) if cfg.resume and os.path.exists(checkpoint) else {}  # read once
    if saved:
        cfg = resumed_config(cfg, saved, out)
    cfg = cfg.resolved()
    values = dataclasses.asdict(cfg)
    check_memory(values, source=checkpoint if saved else None)  # before any work
    nn.check_device(cfg.device)  # a missing CuPy is reported before any work
    nn.process.set_blas_threads(cfg.threads or 1)
    group = distributed.current(cfg.device)
    if group.is_root:
        log(options.settings_table(given, saved, values, given_as))
    folder = RunFolder(cfg.out, cfg.resume, cfg.overwrite) if group.is_root else None
    try:
        with F.reference_convolutions(cfg.reference):
            return _train(cfg, saved, log if group.is_root else _quiet, on_step, group)
    finally:
        if folder is not None:
            folder.release()


def _quiet(*_):
    pass


class TrainingRun:
    """One run of :func:`train`, in parts: its data, decoder, optimiser, logs and checkpoints are
    set up (or restored) by the constructor; :meth:`loop` trains; :meth:`summary` reports."""

    def __init__(self, cfg, saved, log, group=None):
        """``saved``: the configuration in the run's checkpoint when resuming one, else {}."""
        self.cfg, self.log = cfg, log
        self.group = group or distributed.SingleProcess()
        self.root = self.group.is_root
        if self.root:  # rank 0 builds the caches; the other ranks (models.training.distributed) wait, then read them
            self.train_cache, self.val_cache, self.data_summary = prepare_data(cfg, log)
        self.group.barrier()
        if not self.root:
            self.train_cache, self.val_cache, self.data_summary = (
                FeatureCache(run_cache(cfg.out, "train")), FeatureCache(run_cache(cfg.out, "val")),
                {})
        steps_per_epoch = max(1, math.ceil(len(self.train_cache) / (cfg.batch_size * self.group.size)))
        self.total = cfg.iters if cfg.epochs is None else cfg.epochs * steps_per_epoch
        self.ckpt_path, self.best_path = os.path.join(cfg.out, "checkpoint.h5"), os.path.join(cfg.out, "best.h5")
        self.log_path = os.path.join(cfg.out, "log.csv")
        resuming = bool(saved)
        nn.random.seed(cfg.seed)
        self._fix_scale_and_baselines(saved)
        self.model = decoders.build(cfg.feature, cfg.width, cfg.image_size, in_channels=self.train_cache.feature_shape[0],
                                    min_channels=cfg.min_channels).to(cfg.device)
        self.config = dict(dataclasses.asdict(cfg), feature_scale=self.scale, baselines=self.baselines,
                           feature_shape=list(self.train_cache.feature_shape))
        self.encoder = FineTunedEncoder(cfg.feature, cfg.weights, cfg.device) if cfg.train_encoder else None
        self.network = self.encoder.encoder.network if self.encoder else None
        self.trained = self.model.parameters() + (self.encoder.parameters if self.encoder else [])
        self.optimizer = nn.optim.Adam(self.trained, lr=cfg.lr)
        self.schedule = learning_rate_schedule(self.optimizer, cfg, self.total)
        # validated, kept as best.h5 and reconstructed with instead of the trained weights
        self.averaged = nn.optim.ExponentialMovingAverage(self.model, cfg.ema) if cfg.ema else None
        if self.averaged is not None:
            log(f"validating a moving average of the weights (decay {cfg.ema}: about the last "
                f"{round(1 / (1 - cfg.ema))} steps)")
        self.start, self.history = 0, []
        if resuming:
            self.start, self.history = load_checkpoint(self.ckpt_path, self.model, self.optimizer, self.schedule,
                                                       encoder=self.network, averaged=self.averaged)
            log(f"resuming from {self.ckpt_path} at step {self.start}")
        elif cfg.resume:
            log(f"--resume: no checkpoint in {cfg.out} yet, starting from scratch")
        if not resuming and self.root:
            with open(self.log_path, "w", newline="") as f:
                csv.writer(f).writerow(["step", "loss", "lr", "images_per_s", "val_error"])
        self.losses = _truncate_log(self.log_path, self.start) if self.root else []
        self.pending = []  # [step, loss on the device, lr, images/s, validation error]: not read back yet
        self.loss_value = self.losses[-1][1] if self.losses else float("nan")  # the last logged, until a step

    def _fix_scale_and_baselines(self, saved):
        """The feature scale and the baselines are fixed at the start of a run; a resumed run reuses them."""
        cfg = self.cfg
        self.scale = saved["feature_scale"] if saved else feature_scale(self.train_cache,
                                                                         per_channel=cfg.channel_scale)
        if "baselines" in saved:
            self.baselines = saved["baselines"]
        else:  # fitted by rank 0 alone, which validates and saves
            self.baselines = {} if cfg.train_encoder or not self.root else validate_baselines(self.train_cache, self.val_cache,
                                                                             cfg.max_val_images)
        if self.baselines:
            self.log(f"baselines on {min(len(self.val_cache), cfg.max_val_images)} held-out photos: "
                     + ", ".join(f"{name} {error:.4f}" for name, error in self.baselines.items()))

    # --- one step ---------------------------------------------------------------------------
    def make_batch(self, step):
        """Host arrays (features or photos, targets) of step ``step``: a function of (seed, step)."""
        batch, rank = self.cfg.batch_size, self.group.rank  # this rank's slice of the global batch
        indices = batch_indices(step, batch * self.group.size, len(self.train_cache), self.cfg.seed)
        indices = indices[rank * batch:(rank + 1) * batch]
        if self.encoder:
            x = self.encoder.inputs(self.train_cache, indices)
        else:
            x = self.train_cache.rows("features", indices)
            x = x * scale_array(self.scale, x)
        return x, targets_to_float(self.train_cache.rows("targets", indices))

    def train_step(self, x, target):
        """Forward, the paper's loss, backward, clipping, Adam; returns the loss, on the device."""
        features = nn.Tensor(x) if self.encoder is None else self.encoder(nn.Tensor(x)) * float(self.scale)
        loss = F.mse_loss(self.model(features), nn.Tensor(target), reduction="paper")
        self.optimizer.zero_grad()
        loss.backward()
        self.group.average([p.grad for p in self.trained])  # data-parallel: the whole batch's gradient
        if self.cfg.grad_clip:
            nn.optim.clip_grad_norm_(self.trained, self.cfg.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        if self.averaged is not None:
            self.averaged.update(self.model)
        return loss.data

    # --- logs, validation, checkpoints --------------------------------------------------------
    def checkpoint_verifies(self):
        """Whether the run's checkpoint exists and its seal verifies (nn.serialization.verify_seal)."""
        try:
            return verify_seal(self.ckpt_path)
        except WeightFileError:
            return False

    def last_good(self):
        if self.checkpoint_verifies():
            return f"the last good checkpoint is {self.ckpt_path}"
        if os.path.exists(self.ckpt_path):
            return f"{self.ckpt_path} does not verify (damaged), so no good checkpoint is left"
        return "no checkpoint was written yet"

    def read_losses(self):
        """Read the pending losses back from the device (one synchronisation); stop on a NaN."""
        values = nn.to_numpy(nn.get_array_module(self.pending[0][1]).stack([row[1] for row in self.pending]))
        values = values.astype(np.float64)
        self.group.average([values])  # the loss of the whole batch
        for row, value in zip(self.pending, values.tolist()):
            if not math.isfinite(value):
                raise TrainingError(f"loss became {value} at step {row[0]}; stopped: {self.last_good()}; "
                                    "try a lower --lr (and --resume)")
            row[1] = self.loss_value = value

    def log_losses(self):
        """Append the pending (read) steps to log.csv and the loss curve (rank 0)."""
        if not self.root:
            self.pending.clear()
            return
        with open(self.log_path, "a", newline="") as f:
            csv.writer(f).writerows([[s, f"{v:.6g}", f"{lr:.3g}", f"{rate:.2f}", f"{e:.5f}" if e != "" else ""]
                                     for s, v, lr, rate, e in self.pending])
        self.losses.extend((row[0], row[1]) for row in self.pending)
        self.pending.clear()

    def validation_error(self):
        """(error, targets, reconstructions) on the validation photos, now (by the weights' moving
        average where the run keeps one)."""
        model = self.model if self.averaged is None else self.averaged.module
        return validate(model, self.val_cache, self.scale, self.cfg.device, self.cfg.max_val_images,
                        self.encoder)

    def validate_at(self, step):
        """Validate, draw the grid, keep best.h5 when the error is the lowest so far; returns it."""
        error, targets, recons = self.validation_error()
        best = min((e for s, e in self.history if s > 0), default=math.inf)
        self.history.append([step, error])
        write_reconstruction_figure(os.path.join(self.cfg.out, f"recon_{step:07d}.png"), targets[:8], recons[:8],
                                    f"{self.cfg.feature} decoder, step {step}: held-out photos")
        if error < best:
            self.checkpoint(step, self.best_path)
        return error

    def checkpoint(self, step, path=None):
        """Save (rank 0), unless a weight or Adam's state is NaN or infinite (those never reach disk)."""
        if not self.root:
            return
        state = [v for st in self.optimizer.state.values() for v in st.values() if hasattr(v, "shape")]
        if self.averaged is not None:
            state += [p.data for p in self.averaged.module.parameters()]
        if not _all_finite([p.data for p in self.trained] + state):
            raise TrainingError(f"the weights became NaN or infinite by step {step}; nothing was saved and "
                                f"{self.last_good()}; try a lower --lr (and --resume)")
        try:
            save_checkpoint(path or self.ckpt_path, self.model, self.optimizer, step, self.config, self.schedule,
                            self.history, encoder=self.network, averaged=self.averaged)
        except DiskFullError as exc:
            where = f"{exc.path}: {exc.state} at step {step}, so it was not written"
            if self.checkpoint_verifies():
                raise TrainingError(f"{where}; {self.ckpt_path} (an earlier step) is kept: free some space and "
                                    "continue with --resume") from None
            raise TrainingError(f"{where}, and no checkpoint had been written yet: free some space and run the "
                                "command again") from None

    # --- the loop -----------------------------------------------------------------------------
    def loop(self, on_step=None):
        """Train from the start step to the last; returns the step reached. Losses are read back
        every log_every steps and before anything is saved, so a NaN never reaches a checkpoint."""
        cfg = self.cfg
        if self.start == 0 and self.root:  # the error before training: where the validation curve falls from
            self.history.append([0, self.validation_error()[0]])
        prefetch = Prefetcher(self.make_batch, range(self.start, self.total))
        bar = ProgressBar(self.total, start=self.start, label=f"train {cfg.feature} ") if self.root else None
        step, t0, stop = self.start, time.time(), False
        try:
            with _deferred_interrupt() as interrupted:
                while step < self.total and not stop:
                    _, (x, target) = prefetch.next(cfg.device)
                    loss = self.train_step(x, target)
                    step += 1
                    rate = cfg.batch_size * self.group.size * (step - self.start) / max(time.time() - t0, 1e-9)
                    self.pending.append([step, loss, self.schedule.get_last_lr()[0], rate, ""])
                    validating = step % cfg.val_every == 0 or step == self.total
                    saving = step % cfg.checkpoint_every == 0 or step == self.total
                    stopping = on_step is not None and on_step(step)
                    stop = self.group.any(interrupted())  # every rank stops at the same step
                    if not (validating or saving or stopping or step % cfg.log_every == 0 or stop):
                        continue
                    self.read_losses()
                    if validating and self.root:
                        self.pending[-1][4] = self.validate_at(step)
                    self.log_losses()
                    if saving or stopping or stop:
                        self.checkpoint(step)
                    if validating and self.root:
                        _plot(cfg.out, self.losses, self.history, self.baselines)
                    if bar is not None:
                        bar.update(step, loss=self.loss_value, **{"img/s": rate},
                                   **({"val": self.history[-1][1]} if validating else {}))
                    if stopping:
                        break
                if bar is not None:
                    bar.close()
                if stop:
                    self.log(f"interrupted: checkpoint at step {step} saved to {self.ckpt_path}; continue with "
                             "--resume")
                    raise KeyboardInterrupt
        finally:
            prefetch.close()
        return step

    def summary(self, step):
        """The run in numbers (also written to summary.json)."""
        trained = [(s, e) for s, e in self.history if s > 0]
        best_step, best_error = min(trained, key=lambda item: item[1]) if trained else (None, None)
        data = self.data_summary if self.root else {}
        summary = {"rank": self.group.rank, "start": self.start, "steps": step, "final_loss": self.loss_value, "val_history": self.history,
                   "checkpoint": self.ckpt_path, "best": self.best_path if trained else None,
                   "best_step": best_step, "best_error": best_error, "baselines": self.baselines,
                   "skipped": {k: len(v["skipped"]) for k, v in data.items()},
                   "photos": {k: v["photos"] for k, v in data.items()},
                   "samples": {k: v["samples"] for k, v in data.items()}}
        if self.root:
            with open(os.path.join(self.cfg.out, "summary.json"), "w") as f:
                json.dump(_json_safe(summary), f, indent=1, allow_nan=False)
        return summary

    def close(self):
        self.train_cache.close()
        self.val_cache.close()


def _train(cfg, saved, log, on_step, group):
    run = TrainingRun(cfg, saved, log, group)
    try:
        step = run.loop(on_step)
    finally:
        run.close()
    return run.summary(step)


@contextlib.contextmanager
def _deferred_interrupt():
    """Ctrl-C (SIGINT) or SIGTERM (what batch schedulers and containers send) during a step only
    raises a flag; the loop finishes the step, saves, then stops."""
    flag = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = {sig: signal.signal(sig, lambda *_: flag.append(True)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(flag)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _json_safe(value):
    """``value`` with every NaN or infinite float as None (JSON has no NaN: a resumed finished run
    trains no step and has no loss; a validation set of one photo has no error)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _all_finite(arrays):
    """Whether every element of every array is finite (one read-back from the device)."""
    if not arrays:
        return True
    xp = nn.get_array_module(arrays[0])
    return bool(nn.to_numpy(xp.stack([xp.isfinite(a).all() for a in arrays])).all())


def _truncate_log(log_path, upto):
    """Keep the log's rows up to step ``upto`` (a resumed run rewrites what came after); returns losses."""
    with open(log_path, newline="") as f:
        rows = [row for row in csv.reader(f)]
    kept = [rows[0]] + [row for row in rows[1:] if int(row[0]) <= upto]
    with open(log_path, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    return [(int(row[0]), float(row[1])) for row in kept[1:]]


def _plot(out, losses, history, baselines):
    steps, values = zip(*losses) if losses else ((), ())
    plot_curves(os.path.join(out, "loss.png"), [("training loss", steps, values)],
                title="Training loss (Euclidean, per image)", xlabel="step", ylabel="loss")
    if history:
        vs, ve = zip(*history)
        curves = [("decoder", vs, ve)] + [(name, (vs[0], vs[-1]), (error, error)) for name, error in baselines.items()]
        plot_curves(os.path.join(out, "val_error.png"), curves, title="Normalised error on held-out photos",
                    xlabel="step", ylabel="normalised error")
