"""Subcommands train / evaluate / plot / demo (registered into the CLI parser)."""

from __future__ import annotations

import argparse


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register the experiment subcommands (filled in by the agents work)."""
    return None
