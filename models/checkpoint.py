"""Training checkpoints in HDF5, written atomically (nn.serialization.atomic_write).

Layout: ``model/<layer>/<weight|bias>``, ``optimizer/state/<i>/<m|v>``, and for the autoencoder
variant ``encoder/<layer>/...`` (the fine-tuned CaffeNet, in the same file so that decoder and
encoder are always saved together); root attributes ``step``,
``config`` (JSON), ``optimizer_step``, ``lr``, ``scheduler`` (JSON), ``random_state`` (JSON of the
library's generator), ``history`` (JSON: the validation errors so far).
"""
import json

from nn import random
from nn.backend import to_numpy
from nn.serialization import FORMAT, VERSION, WeightFileError, atomic_write, open_h5, read_groups, write_groups


def save_checkpoint(path, model, optimizer, step, config, scheduler=None, history=None, encoder=None):
    import h5py
    opt_state = optimizer.state_dict()
    arrays = {k: to_numpy(v) for k, v in opt_state.items() if k.startswith("state.")}

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=FORMAT, version=VERSION, kind="checkpoint", step=int(step),
                           config=json.dumps(config), optimizer_step=int(opt_state["step"]),
                           lr=float(opt_state["lr"]),
                           scheduler=json.dumps(scheduler.state_dict() if scheduler else {}),
                           random_state=json.dumps(random.get_state()),
                           history=json.dumps(history or []))
            write_groups(f.create_group("model"), {k: to_numpy(v) for k, v in model.state_dict().items()})
            write_groups(f.create_group("optimizer"), arrays)
            if encoder is not None:
                write_groups(f.create_group("encoder"), {k: to_numpy(v) for k, v in encoder.state_dict().items()})

    atomic_write(path, write)


def read_config(path):
    """The run configuration stored in a checkpoint (to rebuild its model)."""
    with open_h5(path) as f:
        if f.attrs.get("kind") != "checkpoint":
            raise WeightFileError(f"{path}: not a featinv training checkpoint (no 'kind=checkpoint' "
                                  "attribute); pass a file written by 'cli.py train'")
        return json.loads(f.attrs["config"])


def load_checkpoint(path, model, optimizer=None, scheduler=None, encoder=None):
    """Restore model (and optimiser, scheduler, fine-tuned encoder, random state); returns (step, history)."""
    read_config(path)
    with open_h5(path) as f:
        model.load_state_dict(read_groups(f["model"]), source=str(path))
        if optimizer is not None:
            state = read_groups(f["optimizer"])
            state.update(step=int(f.attrs["optimizer_step"]), lr=float(f.attrs["lr"]))
            optimizer.load_state_dict(state)
        if scheduler is not None:
            scheduler.load_state_dict(json.loads(f.attrs["scheduler"]))
        if encoder is not None:
            encoder.load_state_dict(read_groups(f["encoder"]), source=f"{path} (encoder)")
        random.set_state(json.loads(f.attrs["random_state"]))
        return int(f.attrs["step"]), json.loads(f.attrs["history"])

