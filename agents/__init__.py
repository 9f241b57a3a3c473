"""Split controllers: baseline policies, the PPO/DQN factory and callbacks that log split metrics.

The factory names below are loaded on first use, so that ``dynsplit.agents.baselines`` alone does not
pay for importing stable-baselines3 and torch (about 4 s).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ALGOS", "load_agent", "make_agent", "make_vec_env"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".factory", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
