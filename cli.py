"""featinv's command line: ``python cli.py COMMAND --help`` for each command.

Each command parses its options, calls one library function, and prints a result; errors that a
user can fix (a missing folder, a bad file, a NaN loss) are printed as one line, without traceback.
"""
import json
import os
import sys

import click

USER_ERRORS = (ValueError, FileNotFoundError, RuntimeError, OSError)


def _run(fn, *args, **kwargs):
    """Call ``fn``; turn the errors a user can act on into a one-line message and exit status 1."""
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130)
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None


def _features_choice():
    from models.decoders import REPRESENTATIONS
    return click.Choice(list(REPRESENTATIONS))


DEVICE = click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
                      help="Run on the CPU (NumPy) or the GPU (CuPy).")


@click.group()
def main():
    """featinv: invert HOG, SIFT, LBP and AlexNet features with up-convolutional networks."""


@main.command()
@click.argument("feature", type=_features_choice())
@click.option("--data", type=click.Path(), help="Folder of training photos (default: the bundled samples).")
@click.option("--val", type=click.Path(), help="Folder of validation photos (default: 10% of --data).")
@click.option("--preset", type=click.Choice(["paper", "cpu"]), default="cpu", show_default=True)
@click.option("--batch-size", type=int)
@click.option("--lr", type=float)
@click.option("--epochs", type=int)
@click.option("--iters", type=int)
@click.option("--width", type=float, help="Channel width multiplier of the decoder.")
@click.option("--image-size", type=int, help="Photo size for shallow features (multiple of 64).")
@click.option("--weights", type=click.Path(), help="CaffeNet HDF5 weights (from import-weights) for AlexNet features.")
@click.option("--flip/--no-flip", default=False, help="Add horizontally flipped copies of the training photos.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, help="Processes for feature extraction (default: all cores).")
@DEVICE
@click.option("--out", type=click.Path(), help="Run folder (default: runs/FEATURE).")
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.")
@click.option("--train-encoder", is_flag=True,
              help="Autoencoder variant: fine-tune CaffeNet up to FEATURE together with the decoder.")
def train(feature, **options):
    """Train the decoder for FEATURE (hog, sift, lbp, conv1..conv5, fc6..fc8)."""
    from models.train import TrainConfig, train as run_training
    summary = _run(run_training, TrainConfig(feature=feature, **options))
    history = summary["val_history"]
    click.echo(f"done: {summary['steps']} steps, final loss {summary['final_loss']:.4g}, "
               f"samples {summary['samples']}, skipped images {summary['skipped']}")
    if history:
        click.echo("validation error: " + ", ".join(f"step {s}: {e:.4f}" for s, e in history))
    click.echo(f"checkpoint: {summary['checkpoint']}")


@main.command()
@click.argument("feature", type=_features_choice())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--checkpoint", required=True, type=click.Path())
@click.option("--out", default="reconstructions.png", show_default=True, type=click.Path())
@DEVICE
def reconstruct(feature, images, checkpoint, out, device):
    """Reconstruct IMAGES from their FEATURE; writes a grid (input | reconstruction)."""
    from models.images import write_grid
    from models.inference import TrainedDecoder
    trained = _run(TrainedDecoder, checkpoint, device)
    _check_feature(feature, trained)
    photos, kept, skipped = trained.photos(images)
    for reason in skipped:
        click.echo(f"skipped: {reason}", err=True)
    if photos is None:
        raise click.ClickException("no usable image given")
    targets, recons = _run(trained.reconstruct, photos)
    write_grid(out, [[t, r] for t, r in zip(targets, recons)])
    click.echo(f"wrote {out} ({len(kept)} images)")


@main.command(name="eval")
@click.argument("feature", type=_features_choice())
@click.option("--checkpoint", required=True, type=click.Path())
@click.option("--data", required=True, type=click.Path())
@DEVICE
def evaluate(feature, checkpoint, data, device):
    """Print the normalised reconstruction error of a trained decoder on a folder of photos."""
    from models.inference import TrainedDecoder, evaluate_folder
    trained = _run(TrainedDecoder, checkpoint, device)
    _check_feature(feature, trained)
    result = _run(evaluate_folder, trained, data)
    click.echo("| feature | images | skipped | normalised error |")
    click.echo("|---|---|---|---|")
    click.echo(f"| {result['feature']} | {result['images']} | {result['skipped']} | {result['error']:.4f} |")


@main.command()
@click.argument("feature", type=_features_choice())
@click.argument("image", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="HDF5 file to write.")
@click.option("--image-size", type=int)
@click.option("--weights", type=click.Path(), help="CaffeNet HDF5 weights for AlexNet features.")
def features(feature, image, out, image_size, weights):
    """Compute FEATURE of IMAGE (channels first) and save it to an HDF5 file."""
    from models.encoders import Encoder
    from models.images import center_square, read_image
    from nn.serialization import save_arrays
    encoder = _run(Encoder, feature, image_size, weights)
    photo = _run(read_image, image)
    values = _run(encoder.features, center_square(photo, encoder.image_size)[None])[0]
    save_arrays(out, {"features": values}, kind="features", representation=feature, source=image,
                image_size=encoder.image_size)
    click.echo(f"wrote {out}: {feature} features of shape {values.shape}")


@main.command(name="import-weights")
@click.argument("file", type=click.Path())
@click.option("--format", "format_", type=click.Choice(["auto", "caffe", "torch", "onnx"]), default="auto",
              show_default=True)
@click.option("--model", type=click.Choice(["caffenet", "alexnet_torchvision"]),
              help="Which network the file holds (default: inferred).")
@click.option("--prototxt", type=click.Path(), help="Caffe net definition to validate against.")
@click.option("--out", required=True, type=click.Path(), help="HDF5 weight file to write.")
def import_weights(file, format_, model, prototxt, out):
    """Convert a Caffe, PyTorch or ONNX weight FILE to featinv's HDF5 weight file."""
    import weights_import
    arrays = _run(weights_import.import_weights, file, format=format_, out=out, model=model, prototxt=prototxt)
    total = sum(a.size for a in arrays.values())
    click.echo(f"wrote {out}: {len(arrays)} tensors, {total:,} parameters")


def _check_feature(feature, trained):
    if trained.feature != feature:
        raise click.ClickException(f"the checkpoint was trained on {trained.feature!r}, not {feature!r}")


if __name__ == "__main__":
    main()
