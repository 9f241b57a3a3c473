"""Subcommands train / evaluate / plot / demo, registered into the ``dynsplit`` parser.

Each lives in its own module with an ``add_*_arguments(parser)`` and a ``run_*(args) -> int``; the modules
are imported here, when the parser is built, so that ``dynsplit --help`` lists them all.
"""

from __future__ import annotations

import argparse


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    from dynsplit.experiments import demo, evaluate, plots, train

    p = sub.add_parser("train", help="train a PPO or DQN split controller (TensorBoard logs, run folder)")
    train.add_train_arguments(p)
    p.set_defaults(func=train.run_train)

    p = sub.add_parser("evaluate", help="run every policy on the same requests; results.json, requests.csv, figures")
    evaluate.add_evaluate_arguments(p)
    p.set_defaults(func=evaluate.run_evaluate)

    p = sub.add_parser("plot", help="redraw figures from saved results (or a profile's rate sweep)")
    plots.add_plot_arguments(p)
    p.set_defaults(func=plots.run_plot)

    p = sub.add_parser("demo", help="the whole pipeline on bundled defaults, in minutes")
    demo.add_demo_arguments(p)
    p.set_defaults(func=demo.run_demo)
