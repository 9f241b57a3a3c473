"""Tiny user models for the partitioner tests, loaded through ``user_models:<callable>`` specs."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """conv -> residual block -> pool -> linear, for a (1, 3, 32, 32) input."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.down = nn.Conv2d(8, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = h + self.block(h)
        h = self.down(h)
        return self.fc(torch.flatten(self.pool(h), 1))


def make_tiny_net() -> nn.Module:
    """Factory used as ``user_models:make_tiny_net``."""
    torch.manual_seed(0)
    return TinyNet()


#: An instance, used as ``user_models:TINY_INSTANCE``.
TINY_INSTANCE = TinyNet()

#: Not a module, used to check the error message.
NOT_A_MODEL = 42


def make_not_a_model() -> str:
    """A factory whose result is not an ``nn.Module``."""
    return "nope"


class Gate(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace through it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x


class GatedNet(nn.Module):
    """A model with a :class:`Gate` inside; traceable only with ``leaf_modules=[Gate]``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.gate = nn.Sequential(Gate())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gate(self.conv(x))
        return self.fc(torch.flatten(self.pool(h), 1))
