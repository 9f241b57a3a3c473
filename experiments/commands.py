"""Subcommands train / evaluate / plot / demo, registered into the ``dynsplit`` parser.

Each lives in its own module with an ``add_<name>_arguments(parser)`` and a ``run_<name>(args) -> int``;
the modules are imported here, when the parser is built, so that ``dynsplit --help`` lists them all.
"""

from __future__ import annotations

import argparse

SUBCOMMANDS = (
    ("train", "train", "train a PPO or DQN split controller (TensorBoard logs, run folder)"),
    ("evaluate", "evaluate", "run every policy on the same requests; results.json, requests.csv, figures"),
    ("plot", "plots", "redraw figures from saved results (or a profile's rate sweep)"),
    ("demo", "demo", "the whole pipeline on bundled defaults, in minutes"),
)
"""(subcommand, module in dynsplit.experiments, help); the module provides add_/run_<subcommand>."""


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    import importlib

    for command, module_name, help_text in SUBCOMMANDS:
        module = importlib.import_module(f"dynsplit.experiments.{module_name}")
        parser = sub.add_parser(command, help=help_text)
        getattr(module, f"add_{command}_arguments")(parser)
        parser.set_defaults(func=getattr(module, f"run_{command}"))
