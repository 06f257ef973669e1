"""Optimisers with PyTorch's update rules, parameter groups and state dicts; learning-rate schedules
in ``nn.optim.lr_scheduler`` (also importable from ``nn.optim``, as before); gradient clipping
and a moving average of the weights.

    optimizer = nn.optim.Adam([{"params": model.encoder.parameters(), "lr": 1e-5},
                               {"params": model.decoder.parameters()}], lr=1e-3)
    scheduler = nn.optim.lr_scheduler.StepLR(optimizer, step_size=30)
"""
from . import lr_scheduler
from .adam import Adam
from .averaging import ExponentialMovingAverage
from .clip_grad import clip_grad_norm_
from .lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR, LRScheduler, MultiStepLR, ReduceLROnPlateau,
                           StepLR)
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Adam", "CosineAnnealingLR", "ExponentialLR", "ExponentialMovingAverage", "LambdaLR", "LRScheduler",
           "MultiStepLR", "Optimizer", "ReduceLROnPlateau", "SGD", "StepLR", "clip_grad_norm_", "lr_scheduler"]
