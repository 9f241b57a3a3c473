"""Traces, server load, the simulated clock and the ``dynsplit/DynamicSplit-v0`` environment."""

from gymnasium.envs.registration import register, registry

ENV_ID = "dynsplit/DynamicSplit-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="dynsplit.envs.dynamic_split:DynamicSplitEnv")

__all__ = ["ENV_ID"]
