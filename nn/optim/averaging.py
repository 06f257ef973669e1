"""Polyak averaging of a model's weights (timm's ModelEmaV2; PyTorch's AveragedModel with an EMA rule)."""
import copy

from ..fused import ema_update


class ExponentialMovingAverage:
    """An exponential moving average of a model's parameters (Polyak averaging), to evaluate
    and keep instead of the last weights::

        a <- decay a + (1 - decay) p        after every optimiser step

    ``module`` is a copy of ``model`` made at construction (so the average starts at the
    model's weights), updated by :meth:`update`. With decay d the average spans about
    1 / (1 - d) steps: it smooths out the noise of the last steps' updates. The rule and the
    start are those of timm's ``ModelEmaV2``; PyTorch's ``AveragedModel`` with
    ``get_ema_multi_avg_fn(decay)`` averages alike but by ``lerp``, starting at the first update.

        average = ExponentialMovingAverage(model, decay=0.999)
        ...; optimizer.step(); average.update(model)
        error = evaluate(average.module)
    """

    def __init__(self, model, decay=0.999):
        if not (isinstance(decay, float) and 0.0 < decay < 1.0):
            raise ValueError(f"ExponentialMovingAverage: decay must be a float in (0, 1), got {decay!r}")
        self.decay = decay
        self.module = copy.deepcopy(model)

    def update(self, model):
        """Move the average towards ``model``'s parameters (the same architecture, on the same device)."""
        for average, param in zip(self.module.parameters(), model.parameters()):
            dtype = average.data.dtype.type
            ema_update(average.data, param.data, dtype(self.decay), dtype(1 - self.decay))

    def state_dict(self):
        """The averaged parameters, as ``module.state_dict()``."""
        return self.module.state_dict()

    def load_state_dict(self, state, source="state dict"):
        self.module.load_state_dict(state, source=source)
