"""featinv's command line: ``python cli.py COMMAND --help`` for each command.

Each command parses its options, calls one library function, and prints a result; errors that a
user can fix (a missing folder, a bad file, a NaN loss) are printed as one line, without traceback.
"""
import errno
import os
import warnings

import click

USER_ERRORS = (ValueError, FileNotFoundError, RuntimeError, OSError)
MAX_MESSAGE = 2000  # characters of an error message printed (a hostile file can make them huge)


def _run(fn, *args, **kwargs):
    """Call ``fn``; turn the errors a user can act on into a one-line message and exit status 1."""
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130)
    except USER_ERRORS as exc:
        message = str(exc)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT) and "disk is full" not in message:
            where = f"{exc.filename}: " if exc.filename else ""
            message = (f"{where}the disk is full ({exc.strerror}); free some space (files finished before are "
                       "kept; train continues with --resume)")
        if len(message) > MAX_MESSAGE:
            message = f"{message[:MAX_MESSAGE]}... ({len(message) - MAX_MESSAGE:,} more characters)"
        raise click.ClickException(message) from None


def _finite(ctx, param, value):
    """Click callback: a float option must be a finite number (ranges alone let NaN through)."""
    import math
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


def _features_choice():
    from models.networks.decoders import REPRESENTATIONS
    return click.Choice(list(REPRESENTATIONS))


DEVICE = click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
                      envvar="FEATINV_DEVICE", show_envvar=True,
                      help="Run on the CPU (NumPy) or the GPU (CuPy).")


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


def _version():
    """The installed package's version, or the one setup.py declares in a source checkout."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("featinv")
    except PackageNotFoundError:
        import re
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "setup.py")) as f:
            found = re.search(r'version="([^"]+)"', f.read())
        return found.group(1) if found else "unknown"


def _plural(count, noun):
    """``1 image``, ``2 images``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, help="Show the version and exit.",
              callback=lambda ctx, _, value: (click.echo(f"featinv {_version()}"), ctx.exit()) if value else None)
def main():
    """featinv: invert HOG, SIFT, LBP and AlexNet features with up-convolutional networks."""
    warnings.formatwarning = _one_line_warning  # skipped photos, random weights: one line each
    from nn.process import keep_freed_memory
    keep_freed_memory()  # each training step reuses the last one's freed buffers (no page faults)


@main.command()
@click.argument("feature", type=_features_choice())
@click.option("--data", type=click.Path(), help="Folder of training photos (default: the bundled samples).")
@click.option("--val", type=click.Path(), help="Folder of validation photos (default: 10% of --data).")
@click.option("--preset", type=click.Choice(["paper", "cpu"]), help="Settings to start from (default: cpu).")
@click.option("--batch-size", type=click.IntRange(min=1))
@click.option("--lr", type=click.FloatRange(min=0, min_open=True, max=1e3), callback=_finite)
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--iters", type=click.IntRange(min=1))
@click.option("--width", type=click.FloatRange(min=0, min_open=True, max=64), callback=_finite,
              help="Channel width multiplier of the decoder.")
@click.option("--min-channels", type=click.IntRange(min=1, max=1 << 16),
              help="No hidden layer of the decoder narrower than this (default 1; preset cpu for sift: 32).")
@click.option("--image-size", type=click.IntRange(min=64), help="Photo size for shallow features (multiple of 64).")
@click.option("--weights", type=click.Path(), help="CaffeNet HDF5 weights (from import-weights) for AlexNet features.")
@click.option("--flip/--no-flip", default=None,
              help="Mirror training photos: flipped copies, or with --crops half the crops at random "
              "(preset cpu: on, paper: off).")
@click.option("--crops", type=click.IntRange(min=0, max=100_000), help="Random crops per training photo, at several scales, each flipped at random "
              "with --flip (0: the whole photo; preset cpu: 64, paper: 0).")
@click.option("--min-scale", type=click.FloatRange(min=0, min_open=True, max=1), callback=_finite, help="Smallest crop side, as a fraction of the photo's short side.")
@click.option("--colour-jitter", type=click.FloatRange(min=0, max=5), callback=_finite, help="Random gain exp(U(-J, J)) per colour channel of each crop.")
@click.option("--channel-scale/--no-channel-scale", default=None,
              help="Scale each feature channel to unit RMS instead of all channels by one factor.")
@click.option("--grad-clip", type=click.FloatRange(min=0), callback=_finite, help="Clip the joint gradient norm to this (0: no clipping).")
@click.option("--lr-schedule", type=click.Choice(["step", "cosine"]),
              help="step: the learning rate divided by 10 after 80% of the steps (default); cosine: lowered "
              "smoothly to 0 at the last step.")
@click.option("--ema", type=click.FloatRange(min=0, max=1, max_open=True), callback=_finite,
              help="Validate, keep as best.h5 and reconstruct with a moving average of the weights of this decay "
              "(0.999: about the last 1000 steps; default 0: the trained weights).")
@click.option("--threads", type=click.IntRange(min=1, max=1024), help="BLAS threads (default 1: safe when other jobs share the cores).")
@click.option("--seed", type=int, help="Random seed of the split, crops, weights and batches (default 0).")
@click.option("--workers", type=click.IntRange(min=1, max=1024), help="Processes for feature extraction (default: all cores).")
@click.option("--feature-dtype", type=click.Choice(["float32", "float16"]),
              help="How the feature cache stores the features (float16: half the bytes; docs/SCALE.md measures the "
                   "cost). Default float32.")
@click.option("--scheduler", help="Build the feature cache on Dask: 'local' (a local cluster of --workers processes) "
              "or a scheduler address such as tcp://HOST:8786 (needs the cluster extra and a shared file system).")
@DEVICE
@click.option("--out", type=click.Path(), help="Run folder (default: runs/FEATURE).")
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint (options not given are "
              "the run's; a given one that differs is refused).")
@click.option("--reference", is_flag=True, help="Compute convolutions as their plain definitions "
              "(nn/functional/conv_reference.py): the same results, slowly; for study.")
@click.option("--overwrite", is_flag=True, help="Replace the finished run in --out (train refuses otherwise).")
@click.option("--train-encoder", is_flag=True,
              help="Autoencoder variant: fine-tune CaffeNet up to FEATURE together with the decoder.")
def train(feature, **options):
    """Train the decoder for FEATURE (hog, sift, lbp, conv1..conv5, fc6..fc8)."""
    from models.training.train import TrainConfig, train as run_training
    summary = _run(run_training, TrainConfig(feature=feature, **options))
    if summary["rank"]:  # under mpirun, rank 0 reports
        return
    history = summary["val_history"]
    loss = summary["final_loss"]
    click.echo(f"done: {summary['steps']} steps, final loss {loss:.4g}, "
               f"samples {summary['samples']}, skipped images {summary['skipped']}")
    if history:
        click.echo("validation error: " + ", ".join(f"step {s}: {e:.4f}" for s, e in history))
    click.echo(f"checkpoint: {summary['checkpoint']}")
    if summary["best_step"] is not None:
        photos = summary["photos"]
        click.echo(f"trained on {photos['train']} photos ({summary['samples']['train']} samples), validated on "
                   f"{photos['val']} held-out photos; best: step {summary['best_step']}, error "
                   f"{summary['best_error']:.4f} ({summary['best']})")
        if summary["baselines"]:
            click.echo("baselines on the same photos: " + ", ".join(
                f"{name} {error:.4f}" for name, error in summary["baselines"].items()))
            click.echo(_verdict(summary["best_error"], summary["baselines"], photos["val"]))


DECODER = click.option("--checkpoint", type=click.Path(),
                       help="A training checkpoint or decoder file (default: the decoder shipped for FEATURE).")


def _decoder(feature, checkpoint, device):
    """The trained decoder of ``checkpoint``, or the one shipped for ``feature``; says which file."""
    from models.evaluation.inference import TrainedDecoder
    from models.evaluation.pretrained import shipped_decoder
    if checkpoint is None:
        checkpoint = shipped_decoder(feature)
        if checkpoint is None:
            raise click.ClickException(f"no decoder is shipped for {feature}; train one ('cli.py train {feature}') "
                                       f"and pass --checkpoint runs/{feature}/best.h5")
    trained = _run(TrainedDecoder, checkpoint, device)
    _check_feature(feature, trained)
    click.echo(f"decoder: {checkpoint} ({trained.name})")
    return trained


def _baselines(trained):
    """The decoder's fitted baselines ({name: model}), and a line saying what they were fitted on."""
    fitted = _run(trained.baselines)
    if fitted is None:
        click.echo("baselines: none for a decoder trained with its encoder (train --train-encoder)")
    else:
        click.echo(f"baselines: {trained.baselines_source}")
    return fitted


def _bar(total, label):
    from models.display.progress import ProgressBar
    return ProgressBar(total, label=label)


@main.command()
@click.argument("feature", type=_features_choice())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@DECODER
@click.option("--out", default="reconstructions.png", show_default=True, type=click.Path())
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Add the mean-image and ridge baselines' images.")
@DEVICE
def reconstruct(feature, images, checkpoint, out, baselines, device):
    """Reconstruct IMAGES from their FEATURE; writes a grid (photo | reconstruction | baselines)."""
    import numpy as np
    from models.scoring.baselines import predictions_as_images
    from models.display.figures import write_reconstruction_figure
    trained = _decoder(feature, checkpoint, device)
    fitted = (_baselines(trained) if baselines else None) or {}
    parts, kept, bar = [], [], _bar(len(images), "reconstructing ")
    for i in range(0, len(images), BATCH):
        photos, kept_now, skipped = trained.photos(images[i:i + BATCH])
        for reason in skipped:
            click.echo(f"skipped: {reason}", err=True)
        if photos is not None:
            parts.append(_run(trained.reconstruct, photos, with_features=True))
            kept += kept_now
        bar.update(min(i + BATCH, len(images)))
    bar.close()
    if not parts:
        raise click.ClickException("no usable image given")
    targets, recons, features_ = (np.concatenate(part) for part in zip(*parts))
    extra = {f"baseline: {name}": predictions_as_images(model, features_, (3,) + targets.shape[1:3])
             for name, model in fitted.items()}
    write_reconstruction_figure(out, targets, recons, _title(f"Reconstructions from {feature} ({trained.name})", trained),
                                extra, row_labels=[os.path.basename(p) for p in kept])
    click.echo(f"wrote {out} ({_plural(len(kept), 'image')})")


@main.command(name="eval")
@click.argument("feature", type=_features_choice())
@DECODER
@click.option("--data", required=True, type=click.Path(), help="Folder of photos to evaluate on.")
@DEVICE
def evaluate(feature, checkpoint, data, device):
    """Print the normalised reconstruction error of a trained decoder on a folder of photos,
    beside the mean-image and ridge baselines."""
    from models.evaluation.inference import evaluate_folder
    trained = _decoder(feature, checkpoint, device)
    baselines = _baselines(trained)
    bar = _bar(0, "evaluating ")
    result = _run(evaluate_folder, trained, data, baselines=baselines, progress=_advance(bar))
    bar.close()
    rows = [("decoder", result["images"], result["skipped"], f"{result['error']:.4f}")]
    rows += [(name, result["images"], result["skipped"], f"{error:.4f}") for name, error in result.get("baselines", {}).items()]
    click.echo(f"{result['feature']} decoder ({trained.name}) on {data}:")
    click.echo(_markdown(["method", "images", "skipped", "normalised error"], rows), nl=False)
    if result["trained_on"]:
        click.echo(f"WARNING: {_plural(len(result['trained_on']), 'photo')} of {data} "
                   f"({', '.join(os.path.basename(p) for p in result['trained_on'][:5])}"
                   f"{', ...' if len(result['trained_on']) > 5 else ''}) {'was' if len(result['trained_on']) == 1 else 'were'} "
                   "in the decoder's training set: their errors flatter the decoder and the ridge; evaluate on "
                   "photos never trained on")
    if baselines is not None:
        click.echo(_verdict(result["error"], result["baselines"], result["images"]))


BATCH = 32  # photos read and reconstructed at a time


def _advance(bar):
    """A ``progress(done, total)`` callback drawing ``bar``."""
    def progress(done, total):
        bar.total = total
        bar.update(done)
    return progress


def _title(title, trained=None, random_weights=False):
    """A figure's title, saying so when AlexNet ran with random weights."""
    if random_weights or (trained is not None and trained.random_weights):
        return f"{title}; AlexNet with random weights"
    return title


@main.command()
@click.argument("feature", type=_features_choice())
@click.argument("image", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="HDF5 file to write.")
@click.option("--image-size", type=click.IntRange(min=64))
@click.option("--weights", type=click.Path(), help="CaffeNet HDF5 weights for AlexNet features.")
@DEVICE
def features(feature, image, out, image_size, weights, device):
    """Compute FEATURE of IMAGE (channels first) and save it to an HDF5 file."""
    from models.data.encoders import Encoder
    from models.data.images import center_square, read_image
    from nn.serialization import save_arrays
    if os.path.isdir(out):
        raise click.BadParameter(f"{out} is a folder; give a file name such as {os.path.join(out, feature + '.h5')}",
                                 param_hint="--out")
    encoder = _run(Encoder, feature, image_size, weights, device=device)
    photo = _run(read_image, image)
    values = _run(encoder.features, center_square(photo, encoder.image_size)[None])[0]
    save_arrays({"features": values}, out, kind="features", representation=feature, source=image,
                image_size=encoder.image_size)
    random = " (AlexNet with random weights)" if encoder.network is not None and weights is None else ""
    click.echo(f"wrote {out}: {feature} features of shape {values.shape}{random}")


@main.command(name="import-weights")
@click.argument("file", type=click.Path())
@click.option("--format", "format_", type=click.Choice(["auto", "caffe", "torch", "onnx"]), default="auto",
              show_default=True)
@click.option("--model", type=click.Choice(["caffenet", "alexnet_torchvision"]),
              help="Which network the file holds (default: inferred).")
@click.option("--prototxt", type=click.Path(), help="Caffe net definition to validate against.")
@click.option("--decoder", type=_features_choice(),
              help="FILE is one of the authors' released invert_alexnet_* caffemodels for this representation.")
@click.option("--out", required=True, type=click.Path(), help="HDF5 weight file to write.")
def import_weights(file, format_, model, prototxt, decoder, out):
    """Convert a Caffe, PyTorch or ONNX weight FILE to featinv's HDF5 weight file."""
    if decoder:
        from models.evaluation.released import import_released_decoder
        arrays = _run(import_released_decoder, file, decoder, out)
    else:
        import weights_import
        arrays = _run(weights_import.import_weights, file, format=format_, out=out, model=model,
                      prototxt=prototxt)
    total = sum(a.size for a in arrays.values())
    click.echo(f"wrote {out}: {len(arrays)} tensors, {total:,} parameters")


@main.command(name="export-decoder")
@click.argument("checkpoint", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Decoder file to write (HDF5, float16 weights).")
@click.option("--recipe", default="", help="The command that trained it, kept in the file.")
def export_decoder(checkpoint, out, recipe):
    """Write the decoder of a training CHECKPOINT as a small file that reconstruct and
    models.evaluation.inference.load_decoder read (weights in float16; settings and held-out errors as attributes)."""
    from models.evaluation.pretrained import export_decoder as export
    held_out = _run(export, checkpoint, out, recipe)
    baselines = ", ".join(f"{k} {v:.4f}" for k, v in held_out["baselines"].items())
    error = held_out["decoder"]
    click.echo(f"wrote {out} ({os.path.getsize(out) / 2 ** 20:.1f} MiB): step {held_out['step']}, error on its "
               f"validation photos {error if error is None else f'{error:.4f}'}" + (f" ({baselines})" if baselines else ""))
    from models.evaluation.pretrained import read_decoder_extras
    fitted, record, digests = _run(read_decoder_extras, out)
    click.echo(f"with the baselines fitted on its {_plural(record['photos'], 'training photo')} and the digests of "
               f"{_plural(len(digests), 'training photo')}" if fitted is not None else
               "without baselines or training photos (no training cache cache_train/ beside the checkpoint): "
               "eval fits the baselines on the bundled photos")


# --- the paper's analyses and the study tools ------------------------------------------------------

def _alexnet_layers():
    from models.networks.alexnet import TAPS
    return click.Choice(list(TAPS))


CHECKPOINT = click.option("--checkpoint", required=True, type=click.Path(),
                          help="A decoder's checkpoint.h5 (AlexNet's fc layers: no decoder is shipped).")
SEED = click.option("--seed", type=int, default=0, show_default=True)


def _markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def _write_figure(out, grid, header, rows, column_labels=None, title=None):
    """Write the PNG grid ``out`` and, beside it, its table as Markdown (``out`` with ``.md``); echo both."""
    from models.display.figures import write_grid
    table = _markdown(header, rows)
    table_path = os.path.splitext(out)[0] + ".md"
    write_grid(out, grid, column_labels, title=title)
    with open(table_path, "w") as f:
        f.write(table)
    click.echo(table + f"wrote {out} and {table_path}")


def _trained_photos(checkpoint, images, device):
    """(the trained decoder, its photos of ``images``, the kept paths); skipped images are reported."""
    from models.evaluation.inference import TrainedDecoder
    trained = _run(TrainedDecoder, checkpoint, device)
    return (trained, *_usable_photos(trained, images))


def _usable_photos(trained, images):
    """(``trained``'s photos of ``images``, the kept paths); skipped images are reported."""
    photos, kept, skipped = trained.photos(images)
    for reason in skipped:
        click.echo(f"skipped: {reason}", err=True)
    if photos is None:
        raise click.ClickException("no usable image given")
    return photos, kept


@main.command()
@click.option("--runs", type=click.Path(), help="Folder holding training runs or decoder files (any depth; "
              "default: the shipped decoders).")
@click.option("--data", required=True, type=click.Path(), help="Folder of test photos.")
@click.option("--out", default="report", show_default=True, type=click.Path(), help="Folder to write into.")
@click.option("--with-optimization", "optimization_photos", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also run the optimisation baseline on the first N photos of --data (N >= 2).")
@click.option("--optimization-iters", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--figure-images", type=click.IntRange(min=1), default=4, show_default=True)
@SEED
@DEVICE
def report(runs, data, out, optimization_photos, optimization_iters, figure_images, seed, device):
    """Evaluate every decoder under --runs on --data: report.md, report.csv and report.png."""
    from models.analyses.report import make_report
    bars = []  # the progress bar of the decoder being evaluated

    def log(line):
        while bars:
            bars.pop().close()
        click.echo(line, err=True)

    def progress(done, total):
        if not bars:
            bars.append(_bar(total, "evaluating "))
        bars[-1].update(done)
    _run(make_report, runs, data, out, seed, optimization_photos, optimization_iters, figure_images, device,
         log=log, progress=progress)
    while bars:
        bars.pop().close()
    with open(os.path.join(out, "report.md")) as f:
        click.echo(f.read())
    click.echo(f"wrote {out}/report.md, report.csv, report.png")


@main.command(name="invert-optimize")
@click.argument("feature", type=_alexnet_layers())
@click.argument("image", type=click.Path())
@click.option("--weights", type=click.Path(), help="CaffeNet HDF5 weights (default: random weights).")
@click.option("--iters", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--lambda-alpha", type=click.FloatRange(min=0), callback=_finite, default=1e-5, show_default=True)
@click.option("--lambda-tv", type=click.FloatRange(min=0), callback=_finite, default=0.5, show_default=True)
@click.option("--out", default="inversion.png", show_default=True, type=click.Path())
@SEED
@DEVICE
def invert_optimize(feature, image, weights, iters, lambda_alpha, lambda_tv, out, seed, device):
    """Invert FEATURE of IMAGE by gradient descent on the image (Mahendran & Vedaldi 2015)."""
    import nn
    from models.networks import alexnet
    from models.display.figures import write_grid
    from models.data.images import center_square, read_image
    from models.analyses.optimize_inversion import InversionConfig, invert
    network = _run(alexnet.caffenet, weights).to(_run(nn.check_device, device))
    if weights is None:
        click.echo("AlexNet has random weights (no --weights): its features say little about the photo; "
                   "import real ones with 'cli.py import-weights'", err=True)
    photo = center_square(_run(read_image, image), alexnet.IMAGE_SIZE)
    cfg = InversionConfig(iters=iters, lambda_alpha=lambda_alpha, lambda_tv=lambda_tv, seed=seed)
    result = _run(invert, network, feature, photo, cfg, log=lambda line: click.echo(line, err=True))
    write_grid(out, [[photo, result["image"]]], ["photo", f"optimised to match {feature}"],
               title=_title(f"Optimisation-based inversion of {feature} ({iters} iterations)", random_weights=weights is None))
    click.echo(f"feature distance ||phi(x) - phi(x0)||^2 / ||phi(x0)||^2: {result['distance_before']:.4g} "
               f"before, {result['distance_after']:.4g} after")
    click.echo(f"wrote {out}")


@main.command()
@click.argument("feature", type=_features_choice())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@DECODER
@click.option("--out", default="perturbations.png", show_default=True, type=click.Path())
@SEED
@DEVICE
def perturb(feature, images, checkpoint, out, seed, device):
    """Decode binarised and 50%-dropped FEATURE of IMAGES: rows (input | clean | binarized | dropped)."""
    from models.analyses.analysis import perturbation_images
    trained = _decoder(feature, checkpoint, device)
    photos, _ = _usable_photos(trained, images)
    grid, errors = _run(perturbation_images, trained, photos, seed)
    _write_figure(out, grid, ["features", "normalised error"], [(k, f"{v:.4f}") for k, v in errors.items()],
                  ["photo", "decoded", "binarized features", "50% dropped"],
                  _title(f"{feature}: decoding perturbed features ({trained.name})", trained))


@main.command(name="dark-knowledge")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@CHECKPOINT
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="How many of the largest values.")
@click.option("--out", default="dark_knowledge.png", show_default=True, type=click.Path())
@DEVICE
def dark_knowledge(images, checkpoint, top, out, device):
    """Decode fc8 in full, only its TOP largest values, and all but those: rows (input | 3 decodings)."""
    from models.analyses.analysis import dark_knowledge_images
    trained, photos, kept = _trained_photos(checkpoint, images, device)
    grid, sets = _run(dark_knowledge_images, trained, photos, top)
    rows = [(os.path.basename(path), *(int((f[i] != 0).sum()) for f in sets.values())) for i, path in enumerate(kept)]
    _write_figure(out, grid, ["image", *(f"non-zeros: {name}" for name in sets)], rows,
                  ["photo", *(f"fc8: {name}" for name in sets)], _title("Dark knowledge: decoding parts of fc8", trained))


@main.command(name="single-neuron")
@CHECKPOINT
@click.option("--index", "indices", type=int, multiple=True, help="A unit to activate (repeatable).")
@click.option("--class", "classes", multiple=True, help="An ImageNet class name or WordNet id (fc8; repeatable).")
@click.option("--value", type=float, callback=_finite, help="The unit's value (default: the norm of an average feature vector).")
@click.option("--out", default="single_neurons.png", show_default=True, type=click.Path())
@DEVICE
def single_neuron(checkpoint, indices, classes, value, out, device):
    """Decode vectors with one unit of fc6, fc7 or fc8 active and the rest 0: one image per unit."""
    from models.analyses.analysis import single_neuron_images
    from models.networks.imagenet_classes import CLASS_NAMES, class_index
    from models.evaluation.inference import TrainedDecoder
    if not indices and not classes:
        raise click.UsageError("give at least one --index or --class")
    try:
        units = list(indices) + [class_index(name) for name in classes]
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from None
    trained = _run(TrainedDecoder, checkpoint, device)
    images, vectors = _run(single_neuron_images, trained, units, value)
    names = [CLASS_NAMES[u] if trained.feature == "fc8" and u < len(CLASS_NAMES) else "" for u in units]
    _write_figure(out, [list(images)], ["unit", "class", "value"],
                  [(u, n, f"{vectors[i].max():.4g}") for i, (u, n) in enumerate(zip(units, names))],
                  [f"unit {u} {n}".strip() for u, n in zip(units, names)], _title(f"{trained.feature}: one unit active", trained))


@main.command()
@click.argument("feature", type=_features_choice())
@click.argument("image_a", type=click.Path())
@click.argument("image_b", type=click.Path())
@DECODER
@click.option("--steps", type=click.IntRange(min=2), default=8, show_default=True)
@click.option("--out", default="interpolation.png", show_default=True, type=click.Path())
@DEVICE
def interpolate(feature, image_a, image_b, checkpoint, steps, out, device):
    """Decode FEATURE interpolated linearly between IMAGE_A's and IMAGE_B's: one row of STEPS images."""
    from models.analyses.analysis import interpolation_images
    trained = _decoder(feature, checkpoint, device)
    photos, kept = _usable_photos(trained, [image_a, image_b])
    if len(kept) != 2:
        raise click.ClickException("both images must be usable")
    images, _ = _run(interpolation_images, trained, photos[0], photos[1], steps)
    _write_figure(out, [list(images)], ["step", "t"], [(i, f"{i / (steps - 1):.3f}") for i in range(steps)],
                  [f"t = {i / (steps - 1):.2f}" for i in range(steps)],
                  _title(f"{trained.feature}: features interpolated from {os.path.basename(image_a)} to "
                         f"{os.path.basename(image_b)} ({trained.name})", trained))


@main.command(name="random-features")
@click.argument("feature", type=_features_choice())
@DECODER
@click.option("--data", required=True, type=click.Path(), help="Photos whose features give the statistics.")
@click.option("--method", type=click.Choice(["histogram", "gaussian"]), default="gaussian", show_default=True)
@click.option("--count", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--bins", type=click.IntRange(min=2), default=32, show_default=True, help="Histogram bins (histogram method).")
@click.option("--out", default="random_features.png", show_default=True, type=click.Path())
@SEED
@DEVICE
def random_features(feature, checkpoint, data, method, count, bins, out, seed, device):
    """Decode random FEATURE vectors drawn from statistics of --data's features."""
    from models.analyses.analysis import random_feature_images
    trained = _decoder(feature, checkpoint, device)
    images, samples, _ = _run(random_feature_images, trained, data, method, count, seed, bins)
    rows = [(i, f"{s.mean():.4g}", f"{(s == 0).mean():.3f}", f"{s.max():.4g}") for i, s in enumerate(samples)]
    _write_figure(out, [list(images[i:i + 8]) for i in range(0, count, 8)],
                  ["sample", "mean", "fraction of zeros", "max"], rows,
                  title=_title(f"{trained.feature}: decoded random features ({method} model of the photos in "
                               f"{os.path.basename(os.path.normpath(data))}/; {trained.name})", trained))


@main.command()
@click.argument("model")
@click.option("--image", type=click.Path(), help="A photo to run (adds activation statistics).")
@click.option("--weights", type=click.Path(), help="CaffeNet / AlexNet HDF5 weights.")
@click.option("--width", type=click.FloatRange(min=0, min_open=True, max=64), callback=_finite, default=1.0,
              show_default=True, help="Decoder width multiplier.")
@click.option("--min-channels", type=click.IntRange(min=1, max=1 << 16), default=1, show_default=True,
              help="No hidden decoder layer narrower than this.")
@click.option("--image-size", type=click.IntRange(min=64), help="Photo size for shallow features (multiple of 64).")
@click.option("--checkpoint", type=click.Path(), help="A trained decoder of MODEL (its widths and weights).")
@click.option("--csv", "csv_path", type=click.Path(), help="Also write the table as CSV.")
@DEVICE
def inspect(model, image, weights, width, min_channels, image_size, checkpoint, csv_path, device):
    """Every layer of MODEL (caffenet, alexnet_torchvision, or a decoder: hog, fc8, ...): shapes,
    parameters, FLOPs per image, and with --image activation statistics."""
    import csv
    import nn
    from models.data.images import center_square, read_image
    from models.evaluation.inference import TrainedDecoder
    from models.analyses.inspect_model import layer_table, model_and_input, trained_model_and_input
    if checkpoint:
        if image:
            trained, photos, _ = _trained_photos(checkpoint, [image], device)
        else:
            trained, photos = _run(TrainedDecoder, checkpoint, device), None
        _check_feature(model, trained)
        network, x = trained_model_and_input(trained, photos)
    else:
        photo = center_square(_run(read_image, image), image_size or 256) if image else None
        network, x = _run(model_and_input, model, photo, weights, width, image_size, min_channels)
        network.to(_run(nn.check_device, device))
    rows = layer_table(network, x)
    columns = ["layer", "kind", "output", "params", "flops"] + (["mean", "std", "zeros", "max"] if image else [])
    cells = [[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in columns] for r in rows]
    cells.append(["total", "", "", str(sum(r["params"] for r in rows)), str(sum(r["flops"] for r in rows))]
                 + [""] * (len(columns) - 5))
    click.echo(_markdown(columns, cells), nl=False)
    sparse = [r["layer"] for r in rows if r["kind"] == "SparseInputConv2d"]
    if sparse and not image:
        click.echo(f"{', '.join(sparse)}: computed from the filled cells of the features alone, so its FLOPs are "
                   "those of this input (zeros without --image); pass --image PHOTO for a real map's")
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            csv.writer(f).writerows([columns] + cells)
        click.echo(f"wrote {csv_path}")


@main.command()
@click.argument("target", required=False)
@click.option("--rtol", type=click.FloatRange(min=0, min_open=True), callback=_finite, default=1e-5, show_default=True)
@SEED
@DEVICE
def gradcheck(target, rtol, seed, device):
    """Check backward against finite differences in float64 for an op or a tiny model (default: every op)."""
    from models.analyses.inspect_model import OPS, check_gradients
    rows, failed = [], False
    for name in [target] if target else list(OPS):
        for part, error in _run(check_gradients, name, seed, device).items():
            failed |= error > rtol
            rows.append((name, part, f"{error:.2e}", "ok" if error <= rtol else "FAIL"))
    click.echo(_markdown(["op or model", "input / parameter", "worst relative error", f"rtol {rtol:g}"], rows),
               nl=False)
    if failed:
        raise click.ClickException("gradient check failed")


SMALL_SET = 64  # fewer held-out photos than this give a noisy error (the spread of the pairs' errors)


def _verdict(error, baselines, photos):
    """One line: does the decoder beat every baseline on ``photos`` held-out photos? (flagged
    loudly when it does not, with a caution when the set is small)"""
    from models.scoring.baselines import unbeaten
    worse = unbeaten(error, baselines)
    caution = (f" (on only {photos} photos, a noisy estimate: measure on more with 'cli.py eval FEATURE "
               "--data HELDOUT')") if photos < SMALL_SET else ""
    if worse:
        return "WARNING: the decoder does not beat the " + " and the ".join(worse) + " baseline" + caution
    return "the decoder beats every baseline" + caution


def _check_feature(feature, trained):
    if trained.feature != feature:
        raise click.ClickException(f"the checkpoint was trained on {trained.feature!r}, not {feature!r}")


if __name__ == "__main__":
    main()
