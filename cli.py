"""featinv's command line: ``python cli.py COMMAND --help`` for each command.

Each command parses its options, calls one library function, and prints a result; errors that a
user can fix (a missing folder, a bad file, a NaN loss) are printed as one line, without traceback.

Errors a user can fix (``nn.errors.is_user_error``: a ``UserError`` such as a bad file or option,
or an ``OSError`` about a path given) are printed as one line; anything else is a bug, shown with
its traceback and a request to report it.
"""
import errno
import os
import sys
import traceback
import warnings

import click

MAX_MESSAGE = 2000  # characters of an error message printed (a hostile file can make them huge)
BUG_REPORT = ("this is a bug in featinv, not a mistake of yours: please report it with the command you ran and "
              "the traceback above")
PATH_FIXES = {errno.ENOENT: "check the path", errno.EACCES: "check its permissions or choose another path",
              errno.EPERM: "check its permissions or choose another path",
              errno.EISDIR: "it is a folder: give a file name", errno.ENOTDIR: "a part of the path is a file, not a folder",
              errno.EROFS: "the file system is read-only: choose another path", errno.EEXIST: "choose another path",
              errno.ENAMETOOLONG: "choose a shorter path", errno.ELOOP: "the path has a loop of symbolic links",
              errno.ENOTEMPTY: "empty the folder or choose another one"}


def _user_message(exc):
    """The one line that says what the user can fix (``exc`` is a user error)."""
    from nn.errors import UserError
    message = str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, UserError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and "disk is full" not in message:
            message = (f"{exc.filename}: the disk is full ({exc.strerror}); free some space (files finished before "
                       "are kept; train continues with --resume)")
        elif "disk is full" not in message:
            fix = PATH_FIXES.get(exc.errno) if exc.strerror == os.strerror(exc.errno) else None
            message = f"{exc.filename}: {exc.strerror}" + (f"; {fix}" if fix else "")
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message) - MAX_MESSAGE:,} more characters)"
    return message


def _run(fn, *args, **kwargs):
    """Call ``fn``; turn the errors a user can act on into a one-line message and exit status 1
    (the others reach :class:`_Main`, which shows them as bugs)."""
    from nn.errors import is_user_error
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        raise click.ClickException(_user_message(exc)) from None


class _Main(click.Group):
    """The command group: an exception no command turned into a message is a bug in featinv,
    shown with its traceback and a request to report it (exit status 1)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            from nn.errors import is_user_error
            if is_user_error(exc):  # raised outside _run
                raise click.ClickException(_user_message(exc)) from None
            traceback.print_exc(file=sys.stderr)
            click.echo(f"Error: {BUG_REPORT}", err=True)
            ctx.exit(1)


def _finite(ctx, param, value):
    """Click callback: a float option must be a finite number (ranges alone let NaN through)."""
    import math
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


IMAGE_OUT = (".png", ".jpg", ".jpeg")  # figures: models.display.figures.IMAGE_FORMATS
ARRAYS_OUT = (".h5", ".hdf5")


class _BadOutput(click.ClickException):
    exit_code = 2  # a usage error, told in one line


def _output(*extensions):
    """Click callback: the output path must be writable as one of ``extensions``
    (nn.serialization.check_output), checked when the options are read, before any work."""
    def check(ctx, param, value):
        from nn.serialization import check_output
        if value is not None:
            try:
                check_output(value, extensions)
            except ValueError as exc:
                raise _BadOutput(str(exc)) from None
        return value
    return check


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


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, help="Show the version and exit.",
              callback=lambda ctx, _, value: (click.echo(f"featinv {_version()}"), ctx.exit()) if value else None)
def main():
    """featinv: invert HOG, SIFT, LBP and AlexNet features with up-convolutional networks."""
    warnings.formatwarning = _one_line_warning  # skipped photos, random weights: one line each
    from nn.process import keep_freed_memory
    keep_freed_memory()  # each training step reuses the last one's freed buffers (no page faults)


def _training_options(command):
    """``train``'s options, one per row of the options table (models/training/options.py) that has one."""
    from models.training.options import OPTIONS, help_text
    for option in reversed([o for o in OPTIONS if o.cli]):
        settings = dict(help=help_text(option), envvar=option.envvar, show_envvar=option.envvar is not None)
        if option.type is bool:
            flag = f"{option.flag}/--no-{option.flag[2:]}" if option.switch else option.flag
            settings.update(dict(default=None) if option.switch else dict(is_flag=True, default=False))
            command = click.option(flag, option.name, **settings)(command)
            continue
        if option.choices:
            kind = click.Choice(list(option.choices))
        elif option.path:
            kind = click.Path()
        elif option.type in (int, float):
            kind = (click.IntRange if option.type is int else click.FloatRange)(
                min=option.minimum, max=option.maximum, min_open=option.min_open, max_open=option.max_open)
            settings["callback"] = _finite if option.type is float else None
        else:
            kind = option.type
        command = click.option(option.flag, option.name, type=kind, default=option.default if option.envvar else None,
                               **settings)(command)
    return command


@main.command()
@click.argument("feature", type=_features_choice())
@_training_options
def train(feature, **options):
    """Train the decoder for FEATURE (hog, sift, lbp, conv1..conv5, fc6..fc8)."""
    from models.training.train import TrainConfig, train as run_training
    summary = _run(run_training, TrainConfig(feature=feature, **options), given_as="command line")
    if summary["rank"]:  # under mpirun, rank 0 reports
        return
    history = summary["val_history"]
    loss = summary["final_loss"]
    if summary["steps"] == summary["start"] > 0:
        click.echo(f"nothing to train: the run finished at step {summary['steps']} (final loss {loss:.4g}); "
                   f"train further with --resume --iters N, N > {summary['steps']}")
    else:
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
    from models.evaluation.inference import load_decoder
    trained = _run(load_decoder, checkpoint, feature, device)
    _check_feature(feature, trained)
    click.echo(f"decoder: {trained.path} ({trained.name})")
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
@click.option("--out", default="reconstructions.png", show_default=True, type=click.Path(),
              callback=_output(*IMAGE_OUT), help="Figure to write (.png, .jpg).")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Add the mean-image and ridge baselines' images.")
@DEVICE
def reconstruct(feature, images, checkpoint, out, baselines, device):
    """Reconstruct IMAGES from their FEATURE; writes a grid (photo | reconstruction | baselines)."""
    import numpy as np
    from models.scoring.baselines import predictions_as_images
    from models.display.figures import write_reconstruction_figure
    from models.data.images import printable
    trained = _decoder(feature, checkpoint, device)
    fitted = (_baselines(trained) if baselines else None) or {}
    parts, kept = [], []
    with _bar(len(images), "reconstructing ") as bar:  # closed before any error is printed
        for i in range(0, len(images), BATCH):
            photos, kept_now, skipped = trained.photos(images[i:i + BATCH])
            for reason in skipped:
                click.echo(f"skipped: {reason}", err=True)
            if photos is not None:
                _note_greyscale(kept_now, photos)
                parts.append(_run(trained.reconstruct, photos, with_features=True))
                kept += kept_now
            bar.update(min(i + BATCH, len(images)))
    if not parts:
        raise click.ClickException("no usable image given")
    targets, recons, features_ = (np.concatenate(part) for part in zip(*parts))
    extra = {f"baseline: {name}": predictions_as_images(model, features_, (3,) + targets.shape[1:3])
             for name, model in fitted.items()}
    _run(write_reconstruction_figure, out, targets, recons,
         _title(f"Reconstructions from {feature} ({trained.name})", trained), extra,
         row_labels=[printable(os.path.basename(p)) for p in kept])
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
    with _bar(0, "evaluating ") as bar:  # closed before any error is printed
        result = _run(evaluate_folder, trained, data, baselines=baselines, progress=_advance(bar))
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
@click.option("--out", required=True, type=click.Path(), callback=_output(*ARRAYS_OUT), help="HDF5 file to write (.h5).")
@click.option("--image-size", type=click.IntRange(min=64))
@click.option("--weights", type=click.Path(), help="CaffeNet HDF5 weights for AlexNet features.")
@DEVICE
def features(feature, image, out, image_size, weights, device):
    """Compute FEATURE of IMAGE (channels first) and save it to an HDF5 file."""
    from models.data.encoders import Encoder
    from models.data.images import center_square, printable, read_image
    from nn.serialization import save_arrays
    if image_size is not None:
        _check_decoder_memory(feature, 1.0, image_size, 1)
    encoder = _run(Encoder, feature, image_size, weights, device=device)
    photo = _run(read_image, image)
    values = _run(encoder.features, center_square(photo, encoder.image_size)[None])[0]
    _run(save_arrays, {"features": values}, out, kind="features", representation=feature,
         source=printable(image), image_size=encoder.image_size)
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
@click.option("--out", required=True, type=click.Path(), callback=_output(*ARRAYS_OUT), help="HDF5 weight file to write.")
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
@click.option("--out", required=True, type=click.Path(), callback=_output(*ARRAYS_OUT),
              help="Decoder file to write (HDF5, float16 weights).")
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


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
def seal(files):
    """Seal HDF5 FILES you trust (written by another tool or an older featinv), so that featinv reads
    them: each is rewritten with the checksum of its bytes, its content unchanged."""
    from nn.serialization import seal_file
    for file in files:
        _run(seal_file, file)
        click.echo(f"sealed {file}")


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
    """Write the grid ``out`` (PNG or JPEG) and, beside it, its table as Markdown (``out`` with ``.md``); echo both."""
    from models.display.figures import write_grid
    from nn.serialization import atomic_write
    table = _markdown(header, rows)
    table_path = os.path.splitext(out)[0] + ".md"
    _run(write_grid, out, grid, column_labels, title=title)

    def write_table(tmp):
        with open(tmp, "w") as f:
            f.write(table)
    _run(atomic_write, table_path, write_table)
    click.echo(table + f"wrote {out} and {table_path}")


def _check_decoder_memory(feature, width, image_size, min_channels):
    """Refuse, before any work, sizes whose photo, features and decoder would not fit in memory
    (models.training.memory: the estimate is in the message)."""
    from models.training.memory import check_memory
    _run(check_memory, {"feature": feature, "width": width, "image_size": image_size,
                        "min_channels": min_channels}, training=False)


def _note_greyscale(paths, photos):
    """One note naming the greyscale photos among ``photos``: the decoders paint colour from them."""
    from models.data.images import is_greyscale, printable
    grey = [printable(os.path.basename(path)) for path, photo in zip(paths, photos) if is_greyscale(photo)]
    if grey:
        click.echo(f"note: {', '.join(grey)}: greyscale; the decoder paints colour from a grey input", err=True)


def _trained_photos(checkpoint, images, device):
    """(the trained decoder, its photos of ``images``, the kept paths); skipped images and greyscale
    photos are reported."""
    from models.evaluation.inference import TrainedDecoder
    trained = _run(TrainedDecoder, checkpoint, device)
    return (trained, *_usable_photos(trained, images))


def _usable_photos(trained, images):
    """(``trained``'s photos of ``images``, the kept paths); skipped images and greyscale photos are reported."""
    photos, kept, skipped = trained.photos(images)
    for reason in skipped:
        click.echo(f"skipped: {reason}", err=True)
    if photos is None:
        raise click.ClickException("no usable image given")
    _note_greyscale(kept, photos)
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
    try:
        _run(make_report, runs, data, out, seed, optimization_photos, optimization_iters, figure_images, device,
             log=log, progress=progress)
    finally:  # the bar's line ends before any error is printed
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
@click.option("--out", default="inversion.png", show_default=True, type=click.Path(), callback=_output(*IMAGE_OUT))
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
    _run(write_grid, out, [[photo, result["image"]]], ["photo", f"optimised to match {feature}"],
         title=_title(f"Optimisation-based inversion of {feature} ({iters} iterations)", random_weights=weights is None))
    click.echo(f"feature distance ||phi(x) - phi(x0)||^2 / ||phi(x0)||^2: {result['distance_before']:.4g} "
               f"before, {result['distance_after']:.4g} after")
    click.echo(f"wrote {out}")


@main.command()
@click.argument("feature", type=_features_choice())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@DECODER
@click.option("--out", default="perturbations.png", show_default=True, type=click.Path(), callback=_output(*IMAGE_OUT))
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
@click.option("--out", default="dark_knowledge.png", show_default=True, type=click.Path(), callback=_output(*IMAGE_OUT))
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
@click.option("--out", default="single_neurons.png", show_default=True, type=click.Path(), callback=_output(*IMAGE_OUT))
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
@click.option("--out", default="interpolation.png", show_default=True, type=click.Path(), callback=_output(*IMAGE_OUT))
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
@click.option("--out", default="random_features.png", show_default=True, type=click.Path(), callback=_output(*IMAGE_OUT))
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
@click.option("--image", type=click.Path(), help="A photo to run (adds activation and gradient statistics, and a figure).")
@click.option("--weights", type=click.Path(), help="CaffeNet / AlexNet HDF5 weights.")
@click.option("--preset", type=click.Choice(["paper", "cpu"]),
              help="An untrained decoder at this preset's settings (default: the shipped decoder where there is one, "
                   "else the cpu preset's).")
@click.option("--width", type=click.FloatRange(min=0, min_open=True, max=64), callback=_finite,
              help="Decoder width multiplier (an untrained decoder; default: the preset's).")
@click.option("--min-channels", type=click.IntRange(min=1, max=1 << 16),
              help="No hidden decoder layer narrower than this (default: the preset's).")
@click.option("--image-size", type=click.IntRange(min=64), help="Photo size for shallow features (multiple of 64).")
@click.option("--checkpoint", type=click.Path(), help="A trained decoder of MODEL (its widths and weights).")
@click.option("--csv", "csv_path", type=click.Path(), callback=_output(".csv"), help="Also write the table as CSV.")
@click.option("--out", type=click.Path(), callback=_output(".png"), help="With --image: also draw the statistics per layer into this PNG.")
@DEVICE
def inspect(model, image, weights, preset, width, min_channels, image_size, checkpoint, csv_path, out, device):
    """Every layer of MODEL (caffenet, alexnet_torchvision, or a decoder: hog, fc8, ...): shapes,
    parameters, FLOPs per image, and with --image activation statistics and the gradients of one
    backward (the reconstruction loss; a classifier's top class score). A decoder is the one a user
    would run: the shipped one (hog, sift, lbp), else the cpu preset's, unless --checkpoint, --preset
    or a setting says otherwise."""
    import csv
    import nn
    from models.data.images import center_square, read_image
    from models.display.plot import plot_bars
    from models.evaluation.inference import TrainedDecoder
    from models.evaluation.pretrained import is_shipped
    from models.analyses.inspect_model import (NETWORKS, gradient_table, inspected_decoder, layer_table,
                                               model_and_input, trained_model_and_input)
    settings = None
    if model not in NETWORKS:
        checkpoint, settings = _run(inspected_decoder, model, checkpoint, preset, width, image_size, min_channels)
    if checkpoint:
        if image:
            trained, photos, _ = _trained_photos(checkpoint, [image], device)
        else:
            trained, photos = _run(TrainedDecoder, checkpoint, device), None
        _check_feature(model, trained)
        network, x, target = trained_model_and_input(trained, photos)
        which = f"{'shipped' if is_shipped(checkpoint) else 'trained'} weights from {checkpoint}"
    else:
        size = settings["image_size"] if settings else image_size
        if settings:
            width, image_size, min_channels = settings["width"], settings["image_size"], settings["min_channels"]
            _check_decoder_memory(model, width, image_size, min_channels)
        photo = center_square(_run(read_image, image), size or 256) if image else None
        network, x, target = _run(model_and_input, model, photo, weights, width or 1.0, image_size, min_channels or 1)
        network.to(_run(nn.check_device, device))
        which = f"weights from {weights}" if weights else "random weights" + ("" if settings else " (no --weights given)")
        if settings:
            which += f" (preset {preset or 'cpu'}: width {settings['width']:g}" + \
                (f", image size {settings['image_size']})" if settings["image_size"] else ")")
    click.echo(f"{model}: {which}")
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
    if image:
        grads, loss = gradient_table(network, x, target)
        what = "the reconstruction loss" if target is not None else "the top class's score"
        click.echo(f"\ngradients of {what} ({loss:.4g}) on {os.path.basename(image)}, one backward:")
        grad_columns = ["layer", "grad_out_norm", "grad_out_mean", "grad_out_max", "grad_w_norm", "grad_w_mean",
                        "grad_w_max"]
        click.echo(_markdown(grad_columns, [[r["layer"]] + [f"{r[c]:.4g}" for c in grad_columns[1:]] for r in grads]),
                   nl=False)
    if image and out:
        std = {r["layer"]: r["std"] for r in rows}
        plot_bars(out, [r["layer"] for r in grads],
                  [("activation std", [std[r["layer"]] for r in grads]),
                   ("|d loss / d output|", [r["grad_out_norm"] for r in grads]),
                   ("|d loss / d weight|", [r["grad_w_norm"] for r in grads])],
                  title=f"{model} on {os.path.basename(image)}: {which}", xlabel=f"backward of {what}")
        click.echo(f"wrote {out}")
    if csv_path:
        from nn.serialization import atomic_write

        def write_csv(tmp):
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows([columns] + cells)
        _run(atomic_write, csv_path, write_csv)
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
