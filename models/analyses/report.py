"""The paper's table of reconstruction errors over every trained run in a folder (its Table 1 and analyses).

A run is a folder holding ``checkpoint.h5`` (found at any depth), judged by its best.h5, or a
decoder file (``*.h5`` of kind ``decoder``: the shipped ones in
``models/evaluation/pretrained/``, the default). Each is evaluated on the photos
of one data folder with the normalised reconstruction error (:mod:`models.scoring.metrics`), as ``cli.py
eval`` does, and with the perturbed features decoded by the same decoder (binarised, 50% of the
units dropped; :mod:`models.analyses.analysis`). With ``optimization_photos`` N >= 2, the optimisation
baseline (:mod:`models.analyses.optimize_inversion`) inverts the first N photos at each AlexNet layer, and
its images, resized to the decoder's output size, are scored against the same targets.

Written to ``out``:

- ``report.csv``: one row per run: run, feature, encoder (``fixed`` or ``fine-tuned``, the
  autoencoder variant), images, error, binarized, dropped 50%, optimization (empty where not run);
- ``report.md``: the paper's layout (one row per method, one column per representation), then
  the per-run table;
- ``report.png``: as the supplementary's Figures 1 and 2: one row per photo (the first few of the
  data folder), the photo then one reconstruction per run.
"""
import csv
import errno
import os

import numpy as np

from nn.errors import OptionError
from nn.serialization import WeightFileError, open_h5

from . import analysis
from ..networks import decoders
from ..scoring.baselines import unbeaten
from ..display.figures import write_grid
from ..data.images import ImageError, center_square, find_images, printable, read_image
from ..evaluation.inference import TrainedDecoder, evaluate_folder
from ..evaluation.pretrained import PRETRAINED_DIR, is_shipped
from ..scoring.metrics import normalized_error
from .optimize_inversion import InversionConfig, invert, inversions_as_targets

BASELINES = ["mean image", "linear (ridge)"]
COLUMNS = ["run", "feature", "encoder", "images", "error", *BASELINES, "beats baselines",
           *analysis.PERTURBATIONS, "optimization"]
METHODS = [("decoder", "fixed", "error"), ("autoencoder", "fine-tuned", "error"),
           *((f"baseline: {name}", "fixed", name) for name in BASELINES),
           *((f"decoder, {name} features", "fixed", name) for name in analysis.PERTURBATIONS),
           ("optimisation (Mahendran & Vedaldi)", "fixed", "optimization")]


def run_checkpoint(folder):
    """The checkpoint a run is judged by: ``best.h5`` (lowest validation error) where it exists."""
    best = os.path.join(folder, "best.h5")
    return best if os.path.exists(best) else os.path.join(folder, "checkpoint.h5")


def find_runs(root=None):
    """The decoders below ``root`` (default: the shipped ones), sorted: the checkpoint of every run
    folder (a folder holding ``checkpoint.h5``: :func:`run_checkpoint`) and every decoder file."""
    root = PRETRAINED_DIR if root is None else root
    if not os.path.isdir(root):
        raise FileNotFoundError(errno.ENOENT, "no such folder; pass --runs with a folder of training runs or "
                                "decoder files, or leave it out for the shipped decoders", root)
    found = []
    for folder, subfolders, names in os.walk(root):
        if "checkpoint.h5" in names:
            found.append(run_checkpoint(folder))
            subfolders[:] = []  # its feature caches hold no decoder
            continue
        found += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".h5") and _is_decoder_file(os.path.join(folder, n))]
    if not found:
        raise OptionError(f"{root}: no training run (checkpoint.h5) or decoder file found below it")
    return sorted(found)


def _is_decoder_file(path):
    try:
        with open_h5(path, verify_checksum=False) as f:
            return f.attrs.get("kind") == "decoder"
    except WeightFileError:
        return False


def run_name(trained, root):
    """How the report names a decoder: ``shipped hog decoder``, or its path (a run: its folder's) below ``root``."""
    if is_shipped(trained.path):
        return trained.name
    if trained.is_decoder_file:
        return os.path.relpath(trained.path, root)
    folder = os.path.dirname(os.path.abspath(trained.path))  # a run: its folder
    return os.path.relpath(folder, root) if folder != os.path.abspath(root) else os.path.basename(folder)


def column_label(trained):
    """The figure's column label of a decoder: its feature, and its run folder's name where that
    says more (``hog``, ``hog (hogE)``)."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(trained.path)))
    shipped = is_shipped(trained.path)
    return trained.feature if shipped or folder == trained.feature else f"{trained.feature} ({folder})"


def optimization_error(trained, paths, cfg):
    """The normalised error of optimisation-based inversion of ``paths`` at ``trained``'s layer."""
    photos, _, _ = trained.photos(paths)
    if photos is None or len(photos) < 2:
        raise ImageError("the optimisation baseline needs at least 2 usable photos")
    inverted = [invert(trained.encoder.network, trained.feature, photo, cfg)["image"] for photo in photos]
    targets = trained.encoder.targets(photos).astype(np.float32)
    return normalized_error(targets, inversions_as_targets(inverted, targets.shape[1]))


def evaluate_run(path, data, seed=0, optimization_photos=0, optimization_iters=200, device="cpu", root=".",
                 log=print, progress=None):
    """One row of ``report.csv`` for the decoder (checkpoint or decoder file) at ``path``."""
    trained = TrainedDecoder(path, device)
    baselines = trained.baselines()
    if baselines is not None:
        log(f"baselines: {trained.baselines_source}")
    result = evaluate_folder(trained, data, baselines=baselines, progress=progress)
    if result["trained_on"]:
        log(f"WARNING: {len(result['trained_on'])} of the photos were in {trained.name}'s training set: "
            "their errors flatter it")
    row = {"run": run_name(trained, root), "label": column_label(trained), "feature": trained.feature, "images": result["images"], "error": result["error"],
           "encoder": "fine-tuned" if trained.config.get("train_encoder") else "fixed"}
    baselines = result.get("baselines", {})
    row.update(baselines)
    if baselines:
        row["beats baselines"] = "NO" if unbeaten(result["error"], baselines) else "yes"
    row.update(analysis.perturbation_errors(trained, data, seed))
    if optimization_photos and trained.encoder.network is not None:
        cfg = InversionConfig(iters=optimization_iters, seed=seed)
        row["optimization"] = optimization_error(trained, find_images(data)[:optimization_photos], cfg)
    return row


def write_tables(out, rows):
    """``report.csv`` and ``report.md`` from the rows of :func:`evaluate_run`."""
    with open(os.path.join(out, "report.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows({k: _cell(row.get(k, "")) for k in COLUMNS} for row in rows)
    features = [name for name in decoders.REPRESENTATIONS if any(row["feature"] == name for row in rows)]
    lines = ["# Normalised reconstruction error", "",
             "| method | " + " | ".join(features) + " |", "|---|" + "---|" * len(features)]
    for method, encoder, column in METHODS:
        cells = [" / ".join(_cell(row[column]) for row in rows if row["feature"] == feature and
                            row["encoder"] == encoder and column in row) for feature in features]
        if any(cells):
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "## Runs", "", "| " + " | ".join(COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(k, "")) for k in COLUMNS) + " |" for row in rows]
    lines += ["", "`report.png`: one row per photo; columns: the photo, then "
              + ", ".join(f"{row['label']} ({row['run']})" for row in rows) + "."]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _cell(value):
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_figure(path, runs, data, count=4, device="cpu"):
    """``report.png``: rows = the first ``count`` photos of ``data``, columns = photo + each decoder
    (``runs``: their checkpoints or decoder files)."""
    originals, paths = [], []
    for photo_path in find_images(data):
        try:
            originals.append(center_square(read_image(photo_path), decoders.SHALLOW_IMAGE_SIZE))
        except ImageError:
            continue
        paths.append(photo_path)
        if len(paths) == count:
            break
    columns, labels = [originals], ["photo"]
    random_weights = False
    for run in runs:
        trained = TrainedDecoder(run, device)
        photos, _, _ = trained.photos(paths)
        columns.append(trained.reconstruct(photos)[1])
        labels.append(column_label(trained))
        random_weights |= trained.random_weights
    title = f"Reconstructions of photos in {os.path.basename(os.path.normpath(data))}/"
    write_grid(path, [list(row) for row in zip(*columns)], labels, row_labels=[printable(os.path.basename(p)) for p in paths],
               title=title + ("; AlexNet with random weights" if random_weights else ""))


def make_report(runs_dir, data, out, seed=0, optimization_photos=0, optimization_iters=200, figure_images=4,
                device="cpu", log=print, progress=None):
    """Evaluate every decoder below ``runs_dir`` (None: the shipped ones) on ``data``; write the tables
    and the figure into ``out``. ``progress(done, total)``: called as each decoder's evaluation advances."""
    runs = find_runs(runs_dir)
    os.makedirs(out, exist_ok=True)
    rows = []
    for run in runs:
        log(f"evaluating {run}")
        rows.append(evaluate_run(run, data, seed, optimization_photos, optimization_iters, device,
                                 root=PRETRAINED_DIR if runs_dir is None else runs_dir, log=log, progress=progress))
    write_tables(out, rows)
    write_figure(os.path.join(out, "report.png"), runs, data, figure_images, device)
    return rows
