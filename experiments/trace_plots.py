"""Figures of channel traces (matplotlib, Agg backend, no pyplot state)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..envs.traces import ChannelTrace
from ..splitting.atomic_files import atomic_output


def plot_channel(traces: ChannelTrace | Iterable[ChannelTrace], path: str | os.PathLike,
                 max_traces: int = 6) -> Path:
    """Draw rate (Mbit/s) against time (s) as steps over one period, one panel per trace, to a PNG.

    At most ``max_traces`` traces are drawn (the first ones). The file is written atomically (a
    temporary file in the same folder, then renamed). Returns the path written.
    """
    tr = [traces] if isinstance(traces, ChannelTrace) else list(traces)
    if not tr:
        raise ValueError("no traces to plot")
    tr = tr[: max(1, int(max_traces))]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)

    fig = Figure(figsize=(8.0, 1.9 * len(tr) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(tr), 1, squeeze=False)[:, 0]
    for ax, t in zip(axes, tr, strict=True):
        x = np.append(t.starts_s, t.duration_s)
        y = np.append(t.rates_bps, t.rates_bps[-1]) / 1e6
        ax.step(x, y, where="post", linewidth=0.8)
        ax.axhline(t.mean_rate_bps / 1e6, color="0.4", linestyle="--", linewidth=0.7)
        ax.set_xlim(0.0, t.duration_s)
        ax.set_ylim(bottom=0.0)
        ax.set_ylabel("Mbit/s")
        ax.set_title(f"{t.name}  (mean {t.mean_rate_bps / 1e6:.3g} Mbit/s, {t.duration_s:.0f} s)", fontsize=9)
    axes[-1].set_xlabel("time (s)")

    with atomic_output(out, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    return out
