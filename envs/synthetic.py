"""Seeded synthetic channel and load processes, for tests, sanity checks and controlled experiments.

Every stochastic process takes ``rng: numpy.random.Generator`` (the environment passes its own
``np_random``), draws from nothing else, and is therefore deterministic per seed. The deterministic ones
accept ``rng`` too (and ignore it), so that all can be called the same way. Units: seconds, bit/s; load
in [0, 1]. Results are ordinary :class:`~dynsplit.envs.traces.ChannelTrace` /
:class:`~dynsplit.envs.load_traces.LoadTrace` objects and loop at their end like any trace.

numpy-only (no torch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..splitting.errors import DynsplitError
from .load_traces import LoadTrace
from .traces import ChannelTrace


def _positive(name: str, x: float) -> float:
    x = float(x)
    if not (math.isfinite(x) and x > 0):
        raise DynsplitError(f"{name}={x!r} (expected a finite number > 0)")
    return x


def _probability(name: str, x: float) -> float:
    x = float(x)
    if not (0.0 < x <= 1.0):
        raise DynsplitError(f"{name}={x!r} (expected a probability in (0, 1])")
    return x


def _n_steps(duration_s: float, step_s: float) -> int:
    return max(1, math.ceil(_positive("duration_s", duration_s) / _positive("step_s", step_s) - 1e-9))


def _walk_parameters(sigma: float, reversion: float) -> tuple[float, float]:
    """Validated ``(sigma, reversion)`` of a mean-reverting random walk."""
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise DynsplitError(f"sigma={sigma!r} (expected a finite number >= 0)")
    a = float(reversion)
    if not (0.0 < a <= 1.0):
        raise DynsplitError(f"reversion={a!r} (expected a number in (0, 1])")
    return sigma, a


def _check_rng(rng: np.random.Generator) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


# ================================================================================== channel
def constant(rate_bps: float, duration_s: float = 1.0, rng: np.random.Generator | None = None) -> ChannelTrace:
    """Constant rate ``rate_bps`` (bit/s, > 0) over one segment of ``duration_s`` seconds."""
    r = _positive("rate_bps", rate_bps)
    return ChannelTrace([_positive("duration_s", duration_s)], [r], f"constant-{r:g}bps", "synthetic:constant")


def steps(rates_bps: Sequence[float], step_s: float, rng: np.random.Generator | None = None) -> ChannelTrace:
    """Rates ``rates_bps`` (bit/s) one after the other, each for ``step_s`` seconds, then looping."""
    r = np.asarray(rates_bps, dtype=float)
    return ChannelTrace(np.full(r.size, _positive("step_s", step_s)), r, f"steps-{r.size}", "synthetic:steps")


def gilbert_elliott(good_bps: float, bad_bps: float, p_good_to_bad: float, p_bad_to_good: float,
                    step_s: float, duration_s: float, rng: np.random.Generator) -> ChannelTrace:
    """Two-state Markov-modulated rate (Gilbert-Elliott channel).

    Every ``step_s`` seconds the state switches good -> bad with probability ``p_good_to_bad`` and
    bad -> good with ``p_bad_to_good``; the rate is ``good_bps`` or ``bad_bps`` (bit/s, ``bad_bps`` may
    be 0 for outages). The first state is drawn from the stationary distribution. Sojourns are
    geometric and drawn whole, so generation costs O(number of state changes).
    """
    rng = _check_rng(rng)
    good = _positive("good_bps", good_bps)
    bad = float(bad_bps)
    if not (math.isfinite(bad) and bad >= 0):
        raise DynsplitError(f"bad_bps={bad!r} (expected a finite rate >= 0 bit/s)")
    pgb = _probability("p_good_to_bad", p_good_to_bad)
    pbg = _probability("p_bad_to_good", p_bad_to_good)
    n = _n_steps(duration_s, step_s)
    state_good = bool(rng.random() < pbg / (pgb + pbg))
    lengths, rates = [], []
    left = n
    while left > 0:
        stay = int(rng.geometric(pgb if state_good else pbg))
        stay = min(stay, left)
        lengths.append(stay)
        rates.append(good if state_good else bad)
        left -= stay
        state_good = not state_good
    if not any(r > 0 for r in rates):  # all-outage draw: the trace must carry something
        rates[-1] = good
    return ChannelTrace(np.asarray(lengths) * float(step_s), rates, "gilbert-elliott",
                        f"synthetic:gilbert_elliott(good={good:g},bad={bad:g},pgb={pgb:g},pbg={pbg:g})")


def log_random_walk(mean_bps: float, sigma: float, step_s: float, duration_s: float, rng: np.random.Generator,
                    min_bps: float | None = None, max_bps: float | None = None,
                    reversion: float = 0.1) -> ChannelTrace:
    """Mean-reverting random walk in log-rate (an AR(1) process on ``log R``), one value per ``step_s``.

    ``x[n+1] = x[n] + reversion * (mu - x[n]) + sigma * N(0, 1)`` with ``x = log R``; ``sigma`` is the
    per-step standard deviation of the log-rate change. ``mu`` is set so that the stationary mean of
    ``R`` is ``mean_bps`` (before clipping), and ``x[0]`` is drawn from the stationary distribution.
    ``reversion`` in (0, 1]; 1 gives independent log-normal steps. Rates are clipped to
    ``[min_bps, max_bps]`` (bit/s) when given.
    """
    rng = _check_rng(rng)
    mean = _positive("mean_bps", mean_bps)
    sigma, a = _walk_parameters(sigma, reversion)
    n = _n_steps(duration_s, step_s)
    var = sigma**2 / (1.0 - (1.0 - a) ** 2)
    mu = math.log(mean) - var / 2.0
    noise = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = mu + math.sqrt(var) * noise[0]
    for i in range(1, n):
        x[i] = x[i - 1] + a * (mu - x[i - 1]) + sigma * noise[i]
    r = np.exp(x)
    if min_bps is not None or max_bps is not None:
        r = np.clip(r, min_bps, max_bps)
    return ChannelTrace(np.full(n, float(step_s)), r, "log-random-walk",
                        f"synthetic:log_random_walk(mean={mean:g},sigma={sigma:g},reversion={a:g})")


# ===================================================================================== load
def load_constant(value: float, duration_s: float = 1.0, rng: np.random.Generator | None = None) -> LoadTrace:
    """Constant load ``value`` in [0, 1] over one segment of ``duration_s`` seconds."""
    v = float(value)
    return LoadTrace([_positive("duration_s", duration_s)], [v], f"constant-{v:g}", "synthetic:load_constant")


def load_steps(values: Sequence[float], step_s: float, rng: np.random.Generator | None = None) -> LoadTrace:
    """Loads ``values`` (each in [0, 1]) one after the other, each for ``step_s`` seconds, then looping."""
    v = np.asarray(values, dtype=float)
    return LoadTrace(np.full(v.size, _positive("step_s", step_s)), v, f"steps-{v.size}", "synthetic:load_steps")


def load_random_walk(mean: float, sigma: float, step_s: float, duration_s: float, rng: np.random.Generator,
                     reversion: float = 0.1) -> LoadTrace:
    """Mean-reverting random walk of the load, clipped to [0, 1], one value per ``step_s`` seconds.

    ``L[n+1] = clip(L[n] + reversion * (mean - L[n]) + sigma * N(0, 1), 0, 1)``, ``L[0] = mean``.
    """
    rng = _check_rng(rng)
    m = float(mean)
    if not (0.0 <= m <= 1.0):
        raise DynsplitError(f"mean={m!r} (expected a load in [0, 1])")
    sigma, a = _walk_parameters(sigma, reversion)
    n = _n_steps(duration_s, step_s)
    noise = rng.standard_normal(n)
    v = np.empty(n)
    v[0] = m
    for i in range(1, n):
        v[i] = min(1.0, max(0.0, v[i - 1] + a * (m - v[i - 1]) + sigma * noise[i]))
    return LoadTrace(np.full(n, float(step_s)), v, "load-random-walk",
                     f"synthetic:load_random_walk(mean={m:g},sigma={sigma:g},reversion={a:g})")
