"""04 - A small network, its training loop, saving and resuming exactly.

What it shows: the PyTorch loop (zero_grad, forward, loss, backward, step, scheduler.step) on a
toy regression: a 1-32-32-1 tanh network learns y = sin(2x) + x/3 with Adam and a StepLR schedule.
Halfway through, everything the run depends on (the weights, Adam's moments and step counts, the
schedule's position) is written with ``nn.save`` to one HDF5 file; a new network, optimiser and
schedule are built from that file and trained on. Their losses are the uninterrupted run's, bit for bit.

Look at: training.png: the loss of the uninterrupted run and of the resumed one, drawn over each other
(log scale: only the red one shows), and fit.png: the curve learnt beside the target.

    python3 docs/tour/04_training.py [OUT]
"""
import os

import numpy as np

import nn.functional as F
from _tour import nn, output_folder, toy_network, toy_problem
from models.display.plot import plot_curves

out = output_folder()
STEPS, HALF = 400, 200
x, y = (nn.Tensor(a) for a in toy_problem())


def build(seed=0):
    nn.random.seed(seed)  # the library's random stream: the initial weights
    model = toy_network()
    optimizer = nn.optim.Adam(model.parameters(), lr=1e-2)
    return model, optimizer, nn.optim.lr_scheduler.StepLR(optimizer, step_size=HALF, gamma=0.5)


def train(model, optimizer, scheduler, steps):
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()              # gradients accumulate otherwise
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()                   # once per step here (per epoch in many PyTorch scripts)
        losses.append(loss.item())
    return losses


def save_state(path, model, optimizer, scheduler):
    """Arrays only, under flat names (an HDF5 file holds no pickled objects)."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    for index, entries in optimizer.state_dict()["state"].items():
        state.update({f"optimizer.{index}.{name}": np.asarray(v) for name, v in entries.items()})
    state["scheduler.last_epoch"] = np.asarray(scheduler.last_epoch)
    nn.save(state, path)


def load_state(path, model, optimizer, scheduler):
    state = nn.load(path)
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    saved = {**optimizer.state_dict(), "state": {}}
    for _, index, name in (key.split(".") for key in state if key.startswith("optimizer.")):
        saved["state"].setdefault(int(index), {})[name] = state[f"optimizer.{index}.{name}"]
    optimizer.load_state_dict(saved)
    scheduler.last_epoch = int(state["scheduler.last_epoch"]) - 1
    scheduler.step()                       # sets every group's lr for that position


uninterrupted = train(*build(), STEPS)

first = build()
resumed = train(*first, HALF)
path = os.path.join(out, "checkpoint.h5")
save_state(path, *first)
print(f"saved after {HALF} steps: {path} ({os.path.getsize(path)} bytes), loss {resumed[-1]:.5f}")
second = build(seed=1)                     # other initial weights: the file must replace them all
load_state(path, *second)
resumed += train(*second, STEPS - HALF)

print(f"loss at steps 1, {HALF}, {STEPS}: {uninterrupted[0]:.4f}, {uninterrupted[HALF - 1]:.5f}, {uninterrupted[-1]:.5f}")
print("the resumed run's losses equal the uninterrupted run's exactly:", resumed == uninterrupted)
assert resumed == uninterrupted
steps = np.arange(1, STEPS + 1)
plot_curves(os.path.join(out, "training.png"), [("uninterrupted", steps, uninterrupted),
                                                 ("resumed at 200", steps, resumed)],
            title="Training loss (MSE); the resumed run lies exactly on the uninterrupted one", ylabel="loss")
grid = np.linspace(-3, 3, 200, dtype=np.float32)[:, None]
with nn.no_grad():                         # no graph recorded: evaluation only
    fitted = second[0](nn.Tensor(grid)).numpy()[:, 0]
plot_curves(os.path.join(out, "fit.png"), [("target sin(2x) + x/3", grid[:, 0], np.sin(2 * grid[:, 0]) + grid[:, 0] / 3),
                                            ("network", grid[:, 0], fitted)],
            title="The curve learnt after 400 steps", xlabel="x", ylabel="y")
print("wrote", os.path.join(out, "training.png"), "and", os.path.join(out, "fit.png"))
