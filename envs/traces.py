"""Channel traces: a piecewise-constant uplink rate ``R(t)`` that loops at its end.

Units inside the code: seconds, bytes, bit/s. Trace files state their own units and are converted on load.

:class:`ChannelTrace` is the one representation every part of dynsplit uses. Its hot-path methods are
:meth:`ChannelTrace.transfer_time_s` (the exact transfer time ``X(b, t0)`` of DESIGN 1.2, a few
microseconds per scalar call) and :meth:`ChannelTrace.mean_rates_before` (the controller's view of the
past, DESIGN 1.4). Both use cumulative bits at segment starts and a binary search, so their cost does not
grow with the trace length; whole loops of the trace are skipped arithmetically.

Loaders, one per source format (each error names the file and, where there is one, the line):

* :func:`load_pensieve` -- two columns ``time_s throughput_Mbps`` (Pensieve "cooked" traces).
* :func:`load_mahimahi` -- one integer millisecond timestamp per line, one 1500-byte delivery
  opportunity each (Mahimahi / Saturator traces), plain or gzip.
* :func:`load_rate_csv` -- any CSV file with a header row, a rate column and a stated unit.
* :func:`load_channel` -- a file (format sniffed), a folder of files, or a bundled name
  (:mod:`dynsplit.envs.bundled`).

This module is numpy-only: the environment's hot path imports it, so it must never import torch.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..splitting.errors import DynsplitError, did_you_mean

#: Bytes per Mahimahi delivery opportunity (one MTU-sized packet).
MAHIMAHI_PACKET_BYTES = 1500
#: Rate units accepted by :func:`load_rate_csv`, as multipliers to bit/s.
RATE_UNITS = {"bps": 1.0, "kbps": 1e3, "Mbps": 1e6, "Gbps": 1e9}
#: Up to this many pairs, :meth:`ChannelTrace.transfer_times_s` loops over the scalar method (faster).
SCALAR_LOOP_MAX = 32
#: File names a trace folder may hold besides traces; :func:`trace_files_in` skips them.
NON_TRACE_PREFIXES = ("readme", "copying", "license", "licence", "attribution", "notice", "sha256sums")


def _label(name: str, source: str) -> str:
    return f"trace {name!r}" + (f" ({source})" if source and source != name else "")


class PiecewiseConstant:
    """A periodic piecewise-constant signal ``v(t)``: value ``values[i]`` on ``[starts[i], starts[i+1])``.

    Time is in seconds; ``t`` outside ``[0, duration_s)`` wraps around (the signal loops, also for
    ``t < 0``). The integral ``V(t) = int_0^t v`` is evaluated in O(log n) from cumulative sums at the
    segment starts. Subclasses fix the meaning and the allowed range of the values
    (:class:`ChannelTrace`: rates in bit/s; :class:`dynsplit.envs.load_traces.LoadTrace`: load in [0, 1]).
    """

    _what = "value"  # noun used in error messages

    def __init__(self, durations_s: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
                 name: str, source: str = "") -> None:
        label = _label(str(name), str(source))
        d = np.array(durations_s, dtype=float).reshape(-1)
        v = np.array(values, dtype=float).reshape(-1)
        if d.size == 0 or v.size == 0:
            raise DynsplitError(f"{label}: empty trace (expected at least one segment)")
        if d.shape != v.shape:
            raise DynsplitError(f"{label}: {d.size} durations but {v.size} {self._what}s (expected equal counts)")
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            i = int(np.flatnonzero(~(np.isfinite(d) & (d > 0)))[0])
            raise DynsplitError(f"{label}: segment {i} has duration {float(d[i])!r} s (expected a finite positive number)")
        if not np.all(np.isfinite(v)):
            i = int(np.flatnonzero(~np.isfinite(v))[0])
            raise DynsplitError(f"{label}: segment {i} has {self._what} {float(v[i])!r} (expected a finite number)")
        self._check_values(v, label)
        starts = np.concatenate(([0.0], np.cumsum(d)))
        cum = np.concatenate(([0.0], np.cumsum(v * d)))
        self._name = str(name)
        self._source = str(source)
        self._n = int(d.size)
        self._period = float(starts[-1])
        self._total = float(cum[-1])
        for a in (d, v, starts, cum):
            a.flags.writeable = False
        self._durations = d
        self._values = v
        self._starts = starts  # n + 1 entries, the last one is the period
        self._cum = cum  # n + 1 entries: integral of v from 0 to each start; the last one is one period's
        # Python lists: bisect on lists is several times faster than numpy for scalar look-ups.
        self._starts_l = starts.tolist()
        self._cum_l = cum.tolist()
        self._values_l = v.tolist()
        # Start of the first segment with a positive value at or after each boundary b = 0..n, counted
        # from the start of the loop holding b (may lie in the next loop). A transfer that still has bits
        # to send at boundary b cannot end before it, even when rounding swallows those bits.
        pos = np.flatnonzero(v > 0)
        if pos.size:
            nxt = np.searchsorted(pos, np.arange(self._n + 1), side="left")
            wrap = nxt >= pos.size
            self._next_pos = np.where(wrap, self._period + starts[pos[0]], starts[pos[np.minimum(nxt, pos.size - 1)]])
        else:
            self._next_pos = np.full(self._n + 1, np.inf)
        self._next_pos.flags.writeable = False
        self._next_pos_l = self._next_pos.tolist()

    def _check_values(self, v: np.ndarray, label: str) -> None:
        """Raise :class:`DynsplitError` when the values are out of the subclass's range."""

    # ----------------------------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        """Short name (usually the file name)."""
        return self._name

    @property
    def source(self) -> str:
        """Where the trace came from (a path, a bundled name or a generator description)."""
        return self._source

    @property
    def duration_s(self) -> float:
        """Loop period in seconds."""
        return self._period

    @property
    def n_segments(self) -> int:
        """Number of constant segments in one period."""
        return self._n

    @property
    def starts_s(self) -> np.ndarray:
        """Segment start times in seconds, shape ``(n_segments,)``, read-only; the first is 0."""
        return self._starts[:-1]

    @property
    def durations_s(self) -> np.ndarray:
        """Segment durations in seconds, shape ``(n_segments,)``, read-only."""
        return self._durations

    def __len__(self) -> int:
        return self._n

    # ----------------------------------------------------------------------------------- integrals
    def _integral(self, t_s: float) -> float:
        """``V(t) = int_0^t v`` through the loops (scalar)."""
        p = self._period
        k = math.floor(t_s / p)
        u = t_s - k * p
        i = bisect_right(self._starts_l, u) - 1
        if i >= self._n:
            i = self._n - 1
        elif i < 0:
            i = 0
        return k * self._total + self._cum_l[i] + self._values_l[i] * (u - self._starts_l[i])

    def _integral_np(self, t_s: np.ndarray) -> np.ndarray:
        """``V(t)`` for an array of times (vectorised)."""
        t = np.asarray(t_s, dtype=float)
        k = np.floor(t / self._period)
        u = t - k * self._period
        i = np.clip(np.searchsorted(self._starts, u, side="right") - 1, 0, self._n - 1)
        return k * self._total + self._cum[i] + self._values[i] * (u - self._starts[i])

    def _value_at(self, t_s: float) -> float:
        u = t_s - math.floor(t_s / self._period) * self._period
        i = bisect_right(self._starts_l, u) - 1
        return self._values_l[min(max(i, 0), self._n - 1)]

    def _integral_between(self, t0_s: float, t1_s: float) -> float:
        p = self._period
        k0 = math.floor(t0_s / p)
        k1 = math.floor(t1_s / p)
        return (k1 - k0) * self._total + (self._integral(t1_s - k1 * p) - self._integral(t0_s - k0 * p))

    def _means_before(self, t_s: float, k: int, bin_s: float) -> np.ndarray:
        if not (isinstance(k, (int, np.integer)) and k >= 1):
            raise DynsplitError(f"history length k={k!r} (expected an integer >= 1)")
        if not (bin_s > 0 and math.isfinite(bin_s)):
            raise DynsplitError(f"history bin {bin_s!r} s (expected a finite number > 0)")
        if k > 64:
            edges = t_s - bin_s * np.arange(k, -1, -1, dtype=float)
            return np.diff(self._integral_np(edges)) / bin_s
        # Whole window inside one constant segment (coarse load traces, 1-5 s channel steps): one look-up.
        lo = t_s - bin_s * k
        loop = math.floor(lo / self._period)
        u0 = lo - loop * self._period
        seg = bisect_right(self._starts_l, u0) - 1
        if 0 <= seg < self._n and t_s - loop * self._period <= self._starts_l[seg + 1]:
            return np.full(k, self._values_l[seg])
        # Small k (the usual history): scalar look-ups beat numpy's per-call overhead.
        integral = self._integral
        v = [integral(t_s - bin_s * (k - i)) for i in range(k + 1)]
        return np.array([(v[i + 1] - v[i]) / bin_s for i in range(k)])

    def _check_t(self, t_s: float) -> None:
        if not math.isfinite(t_s):
            raise DynsplitError(f"{_label(self._name, self._source)}: time {t_s!r} s (expected a finite number)")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self._name!r}, n_segments={self._n}, "
                f"duration_s={self._period:.6g})")


class ChannelTrace(PiecewiseConstant):
    """Piecewise-constant uplink rate in bit/s that loops at its end.

    ``rates_bps[i]`` holds on ``[starts_s[i], starts_s[i] + durations_s[i])``; the loop period is
    ``duration_s = sum(durations_s)``. Rates must be finite, non-negative and not all zero; zero-rate
    segments (outages) are allowed and simply take time. Times before 0 or after the end wrap around.

    Args:
        durations_s: segment lengths in seconds (> 0).
        rates_bps: segment rates in bit/s (>= 0, finite, not all zero).
        name: short name, used in messages and results.
        source: where it came from (path or description).
    """

    _what = "rate"

    def _check_values(self, v: np.ndarray, label: str) -> None:
        if np.any(v < 0):
            i = int(np.flatnonzero(v < 0)[0])
            raise DynsplitError(f"{label}: segment {i} has negative rate {float(v[i])!r} bit/s (expected >= 0)")
        if not np.any(v > 0):
            raise DynsplitError(f"{label}: every rate is zero (expected some capacity to send anything)")

    @classmethod
    def from_times(cls, times_s: Sequence[float] | np.ndarray, rates_bps: Sequence[float] | np.ndarray,
                   name: str, source: str = "") -> ChannelTrace:
        """Build from sample times: ``rates_bps[i]`` holds from ``times_s[i]`` to ``times_s[i+1]``.

        Times are in seconds and must increase strictly; they are shifted so the first is 0. The last
        segment lasts the median step (there is no next sample to end it). At least two samples.
        """
        durations = _durations_from_times(times_s, _label(str(name), str(source)))
        return cls(durations, rates_bps, name, source)

    @property
    def rates_bps(self) -> np.ndarray:
        """Segment rates in bit/s, shape ``(n_segments,)``, read-only."""
        return self._values

    @property
    def mean_rate_bps(self) -> float:
        """Time-weighted mean rate over one period, bit/s."""
        return self._total / self._period

    @property
    def bits_per_period(self) -> float:
        """Bits the channel carries in one loop period."""
        return self._total

    def rate_at(self, t_s: float) -> float:
        """Rate in bit/s at time ``t_s`` (seconds; wraps around the loop)."""
        return self._value_at(t_s)

    def bits_between(self, t0_s: float, t1_s: float) -> float:
        """Exact number of bits the channel carries between ``t0_s`` and ``t1_s`` (seconds, loops).

        Negative when ``t1_s < t0_s``.
        """
        return self._integral_between(t0_s, t1_s)

    def mean_rate_between(self, t0_s: float, t1_s: float) -> float:
        """Mean rate in bit/s over ``[t0_s, t1_s]`` (seconds, ``t1_s > t0_s``)."""
        if not t1_s > t0_s:
            raise DynsplitError(f"mean rate over [{t0_s!r}, {t1_s!r}] s (expected t1 > t0)")
        return self._integral_between(t0_s, t1_s) / (t1_s - t0_s)

    def mean_rates_before(self, t_s: float, k: int, bin_s: float = 1.0) -> np.ndarray:
        """The controller's rate history at time ``t_s``: mean rates (bit/s) of the last ``k`` bins.

        Element ``i`` of the result (shape ``(k,)``) is the mean rate over ``[t - (k-i)*bin_s,
        t - (k-i-1)*bin_s]``: oldest first, the bin ending at ``t_s`` last. Only ``R`` before ``t_s``
        is used. Bins before time 0 wrap around to the end of the loop (the trace is periodic).
        """
        return self._means_before(t_s, k, bin_s)

    # ------------------------------------------------------------------------------ transfer time
    def transfer_time_s(self, nbytes: float, t0_s: float) -> float:
        """Exact time in seconds to send ``nbytes`` bytes starting at ``t0_s`` (seconds).

        The smallest ``tau`` with ``int_{t0}^{t0+tau} R(t) dt = 8 * nbytes`` through the looping
        piecewise-constant trace; zero-rate segments are passed through. O(log n): whole loops are
        skipped arithmetically, the end is found by binary search on cumulative bits.
        ``nbytes == 0`` gives 0.0.
        """
        bits = 8.0 * nbytes
        if not bits > 0.0:
            if bits == 0.0:
                return 0.0
            raise DynsplitError(f"transfer of {nbytes!r} bytes (expected a number >= 0)")
        p = self._period
        starts = self._starts_l
        vals = self._values_l
        k = math.floor(t0_s / p)
        u = t0_s - k * p
        i = bisect_right(starts, u) - 1
        if i >= self._n:
            i = self._n - 1
        elif i < 0:
            i = 0
        rate = vals[i]
        end = starts[i + 1]
        avail = rate * (end - u)
        if bits <= avail:  # finishes inside the current segment (the common case)
            return bits / rate
        total = self._total
        cum = self._cum_l
        c = cum[i + 1] + (bits - avail)  # target cumulative bits, counted from the current loop's start
        m = math.ceil(c / total) - 1  # full loops to skip so that the rest r is in (0, total]
        r = c - m * total
        if r > total:
            r -= total
            m += 1
        elif r <= 0.0:
            r += total
            m -= 1
        j = bisect_left(cum, r)  # first start whose cumulative bits reach r: the end is in segment j-1
        if j > self._n:
            j = self._n
        s = j - 1
        x = starts[s] + (r - cum[s]) / vals[s]
        return (end - u) + max(m * p + (x - end), self._next_pos_l[i + 1] - end)

    def transfer_times_s(self, nbytes: np.ndarray | Sequence[float] | float,
                         t0_s: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Vectorised :meth:`transfer_time_s`: seconds for every ``(nbytes, t0_s)`` pair (broadcast).

        For the oracle, which evaluates every action at once: ``nbytes`` is an array of byte counts,
        ``t0_s`` a start time or an array of them (e.g. ``t + D_j``). Returns a float array of the
        broadcast shape (0-d for two scalars).
        """
        nb = np.asarray(nbytes, dtype=float)
        t0 = np.asarray(t0_s, dtype=float)
        f = self.transfer_time_s
        # A few actions: looping over the scalar method is faster than numpy's per-call overhead.
        if t0.ndim == 0 and nb.size <= SCALAR_LOOP_MAX:
            t = float(t0)
            return np.array([f(b, t) for b in nb.ravel().tolist()]).reshape(nb.shape)
        if nb.shape == t0.shape and nb.size <= SCALAR_LOOP_MAX:
            out = [f(b, t) for b, t in zip(nb.ravel().tolist(), t0.ravel().tolist(), strict=True)]
            return np.array(out).reshape(nb.shape)
        bits, t0 = np.broadcast_arrays(8.0 * nb, t0)
        if not np.all(bits >= 0):
            bad = bits[~(bits >= 0)].reshape(-1)[0] / 8.0
            raise DynsplitError(f"transfer of {float(bad)!r} bytes (expected a number >= 0)")
        return self._transfer_times_np(bits, t0)

    def _transfer_times_np(self, bits: np.ndarray, t0: np.ndarray) -> np.ndarray:
        """Numpy implementation of :meth:`transfer_times_s` (``bits`` and ``t0`` already broadcast)."""
        p = self._period
        total = self._total
        starts = self._starts
        cum = self._cum
        vals = self._values
        k = np.floor(t0 / p)
        u = t0 - k * p
        i = np.clip(np.searchsorted(starts, u, side="right") - 1, 0, self._n - 1)
        rate = vals[i]
        end = starts[i + 1]
        avail = rate * (end - u)
        inside = bits <= avail
        c = cum[i + 1] + (bits - avail)
        m = np.ceil(c / total) - 1.0
        r = c - m * total
        over = r > total
        under = r <= 0.0
        r = np.where(over, r - total, np.where(under, r + total, r))
        m = m + over - under
        j = np.clip(np.searchsorted(cum, r, side="left"), 1, self._n)
        s = j - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            x = starts[s] + (r - cum[s]) / vals[s]
            far = (end - u) + np.maximum(m * p + (x - end), self._next_pos[i + 1] - end)
            out = np.where(inside, bits / rate, far)
        return np.where(bits == 0.0, 0.0, out)

    def scaled(self, factor: float) -> ChannelTrace:
        """The same trace with every rate multiplied by ``factor`` (> 0); name and source are kept."""
        if not (isinstance(factor, (int, float, np.floating)) and math.isfinite(factor) and factor > 0):
            raise DynsplitError(f"rate scale {factor!r} (expected a finite number > 0)")
        return ChannelTrace(self._durations, self._values * float(factor), self._name, self._source)


def _durations_from_times(times_s: Sequence[float] | np.ndarray, label: str) -> np.ndarray:
    """Segment durations (s) from strictly increasing sample times; the last one is the median step."""
    t = np.array(times_s, dtype=float).reshape(-1)
    if t.size < 2:
        raise DynsplitError(f"{label}: {t.size} sample(s) (expected at least two timed samples)")
    if not np.all(np.isfinite(t)):
        raise DynsplitError(f"{label}: non-finite sample time (expected finite seconds)")
    step = np.diff(t)
    if np.any(step <= 0):
        i = int(np.flatnonzero(step <= 0)[0]) + 1
        raise DynsplitError(f"{label}: sample {i} at {float(t[i])!r} s is not after the previous one ({float(t[i - 1])!r} s)")
    return np.append(step, np.median(step))


# ======================================================================================== loaders
def _read_text(path: str | os.PathLike) -> str:
    """Whole text of a plain or ``.gz`` file; missing or binary files become :class:`DynsplitError`."""
    p = Path(path)
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rb") as f:
                data = f.read()
        else:
            data = p.read_bytes()
    except FileNotFoundError:
        raise DynsplitError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise DynsplitError(f"{p}: is a folder (expected a trace file)") from None
    except (OSError, EOFError) as e:
        raise DynsplitError(f"{p}: cannot read ({e})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DynsplitError(f"{p}: not a text file (expected a text trace, optionally gzip-compressed)") from None


def _trace_name(path: Path) -> str:
    return path.name[:-3] if path.name.endswith(".gz") else path.name


def load_pensieve(path: str | os.PathLike) -> ChannelTrace:
    """Load a Pensieve "cooked" trace: lines ``time_s<TAB or space>throughput_Mbps``, no header.

    Steps may be irregular. Times are absolute seconds and are shifted so the first is 0; the rate on a
    line holds until the next line's time, and the last line for the median step (so a trace of n
    samples lasts ``t[-1] - t[0] + median step``). Mbit/s are converted to bit/s (x 1e6).

    Pensieve's own simulator attributes ``bw[i]`` to the interval *ending* at ``time[i]``; the
    convention here attributes it to the interval *starting* there. The two differ by one sample shift.
    """
    p = Path(path)
    text = _read_text(p)
    times: list[float] = []
    rates: list[float] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        parts = s.split()
        try:
            if len(parts) != 2:
                raise ValueError
            t, r = float(parts[0]), float(parts[1])
        except ValueError:
            raise DynsplitError(f"{p}:{lineno}: {s[:60]!r} (expected two numbers 'time_s throughput_Mbps')") from None
        if not (math.isfinite(t) and math.isfinite(r)):
            raise DynsplitError(f"{p}:{lineno}: {s[:60]!r} (expected finite numbers)")
        if r < 0:
            raise DynsplitError(f"{p}:{lineno}: negative throughput {r!r} Mbit/s (expected >= 0)")
        if times and t <= times[-1]:
            raise DynsplitError(f"{p}:{lineno}: time {t!r} s is not after the previous time {times[-1]!r} s "
                                "(expected increasing times)")
        times.append(t)
        rates.append(r * 1e6)
    if not times:
        raise DynsplitError(f"{p}: empty trace file (expected lines 'time_s throughput_Mbps')")
    if len(times) < 2:
        raise DynsplitError(f"{p}: one sample only (expected at least two lines 'time_s throughput_Mbps')")
    return ChannelTrace.from_times(times, rates, _trace_name(p), str(p))


def load_mahimahi(path: str | os.PathLike, bin_s: float = 0.1) -> ChannelTrace:
    """Load a Mahimahi trace (plain or ``.gz``) and bin it into a rate in bit/s.

    Each line is an integer timestamp in ms: one opportunity to deliver a 1500-byte packet at that
    time (repeated lines = several packets in that ms). The rate of a bin is ``packets * 1500 * 8 /
    bin_s``. Choice of period: like ``mm-link``, the trace loops with period equal to its *last*
    timestamp, so opportunities at that timestamp coincide with time 0 of the next loop and are counted
    in the first bin; the last bin is shortened so that the period is exact (not rounded to whole bins).
    The mean rate therefore equals Mahimahi's: ``lines * 12000 bit / last_ms``.
    """
    p = Path(path)
    if not (isinstance(bin_s, (int, float)) and math.isfinite(bin_s) and bin_s > 0):
        raise DynsplitError(f"Mahimahi bin {bin_s!r} s (expected a finite number > 0)")
    lines = _read_text(p).splitlines()
    try:
        ms = np.array([int(x) for x in lines], dtype=np.int64)
        linenos = None
    except ValueError:
        vals, nos = [], []
        for lineno, line in enumerate(lines, 1):
            s = line.strip()
            if not s:
                continue
            try:
                vals.append(int(s))
            except ValueError:
                raise DynsplitError(f"{p}:{lineno}: {s[:60]!r} (expected one integer timestamp in ms per line)") from None
            nos.append(lineno)
        ms = np.array(vals, dtype=np.int64)
        linenos = np.array(nos)

    def line_of(idx: int) -> int:
        return int(linenos[idx]) if linenos is not None else idx + 1

    if ms.size == 0:
        raise DynsplitError(f"{p}: empty trace file (expected one integer timestamp in ms per line)")
    if np.any(ms < 0):
        i = int(np.flatnonzero(ms < 0)[0])
        raise DynsplitError(f"{p}:{line_of(i)}: negative timestamp {int(ms[i])} ms (expected >= 0)")
    back = np.flatnonzero(np.diff(ms) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise DynsplitError(f"{p}:{line_of(i)}: timestamp {int(ms[i])} ms is before the previous one "
                            f"({int(ms[i - 1])} ms) (expected non-decreasing timestamps)")
    last_ms = int(ms[-1])
    if last_ms <= 0:
        raise DynsplitError(f"{p}: last timestamp is {last_ms} ms (expected > 0 ms; it is the loop period)")
    bin_ms = bin_s * 1000.0
    n_bins = max(1, math.ceil(last_ms / bin_ms - 1e-9))
    idx = np.minimum(np.floor((ms % last_ms) / bin_ms).astype(np.int64), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(float)
    durations = np.full(n_bins, bin_s)
    durations[-1] = (last_ms - (n_bins - 1) * bin_ms) / 1000.0
    rates = counts * (MAHIMAHI_PACKET_BYTES * 8) / durations
    return ChannelTrace(durations, rates, _trace_name(p), str(p))


def load_rate_csv(path: str | os.PathLike, rate_column: str, unit: str, time_column: str | None = None,
                  interval_s: float | None = None) -> ChannelTrace:
    """Load a rate trace from a CSV file with a header row.

    Args:
        rate_column: header of the rate column.
        unit: unit of that column, one of ``bps``, ``kbps``, ``Mbps``, ``Gbps`` (converted to bit/s).
        time_column: header of a time column in seconds (increasing; shifted to start at 0; the last
            sample lasts the median step) -- or
        interval_s: the fixed step between rows in seconds. Give exactly one of the two.
    """
    p = Path(path)
    if unit not in RATE_UNITS:
        raise DynsplitError(f"rate unit {unit!r} (expected one of {', '.join(RATE_UNITS)}){did_you_mean(unit, RATE_UNITS)}")
    if (time_column is None) == (interval_s is None):
        raise DynsplitError(f"{p}: give exactly one of time_column and interval_s (got "
                            f"time_column={time_column!r}, interval_s={interval_s!r})")
    if interval_s is not None and not (math.isfinite(interval_s) and interval_s > 0):
        raise DynsplitError(f"{p}: interval_s={interval_s!r} (expected a finite number of seconds > 0)")
    header, rows = _read_csv(p)
    cols = {"rate": rate_column} | ({"time": time_column} if time_column is not None else {})
    where = {}
    for role, col in cols.items():
        if col not in header:
            raise DynsplitError(f"{p}: no {role} column {col!r}{did_you_mean(col, header)} (columns: {', '.join(header)})")
        where[role] = header.index(col)
    scale = RATE_UNITS[unit]
    times, rates = [], []
    for lineno, row in rows:
        r = _csv_float(p, lineno, row, where["rate"], rate_column)
        if r < 0:
            raise DynsplitError(f"{p}:{lineno}: column {rate_column!r} has negative rate {r!r} {unit} (expected >= 0)")
        rates.append(r * scale)
        if time_column is not None:
            t = _csv_float(p, lineno, row, where["time"], time_column)
            if times and t <= times[-1]:
                raise DynsplitError(f"{p}:{lineno}: time {t!r} s is not after the previous time {times[-1]!r} s "
                                    "(expected increasing times)")
            times.append(t)
    if not rates:
        raise DynsplitError(f"{p}: no data rows (expected a header row and at least one row)")
    name = _trace_name(p)
    if time_column is not None:
        return ChannelTrace.from_times(times, rates, name, str(p))
    return ChannelTrace(np.full(len(rates), float(interval_s)), rates, name, str(p))


def _read_csv(p: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line number, fields)`` rows of a CSV file; blank rows skipped."""
    text = _read_text(p)
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for fields in reader:
            if not fields or all(not f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip() for f in fields]
                continue
            if len(fields) != len(header):
                raise DynsplitError(f"{p}:{reader.line_num}: {len(fields)} fields (expected {len(header)}, "
                                    "as in the header row)")
            rows.append((reader.line_num, fields))
    except csv.Error as e:
        raise DynsplitError(f"{p}:{reader.line_num}: malformed CSV ({e})") from None
    if header is None:
        raise DynsplitError(f"{p}: empty file (expected a header row and data rows)")
    return header, rows


def _csv_float(p: Path, lineno: int, row: list[str], col: int, name: str) -> float:
    s = row[col].strip()
    try:
        v = float(s)
    except ValueError:
        raise DynsplitError(f"{p}:{lineno}: column {name!r} has {s[:40]!r} (expected a number)") from None
    if not math.isfinite(v):
        raise DynsplitError(f"{p}:{lineno}: column {name!r} has {s!r} (expected a finite number)")
    return v


def sniff_channel_format(path: str | os.PathLike) -> str:
    """``'mahimahi'`` (``.gz`` or integer-only lines) or ``'pensieve'`` (two numeric columns).

    A header row, or anything else, raises :class:`DynsplitError` (CSV files with a header go through
    :func:`load_rate_csv`, which needs the rate column and unit).
    """
    p = Path(path)
    if p.name.endswith(".gz"):
        return "mahimahi"
    text = _read_text(p)
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        parts = s.replace(",", " ").split()
        if len(parts) == 1 and parts[0].lstrip("-").isdigit():
            return "mahimahi"
        try:
            [float(x) for x in parts]
            numeric = True
        except ValueError:
            numeric = False
        if numeric and len(parts) == 2:
            return "pensieve"
        if not numeric:
            raise DynsplitError(f"{p}:{lineno}: looks like a header row ({s[:60]!r}); load CSV rate files with "
                                "load_rate_csv (in a config: channel format 'csv' with rate_column and unit)")
        raise DynsplitError(f"{p}:{lineno}: {len(parts)} numeric columns (expected a Pensieve trace "
                            "'time_s throughput_Mbps' or a Mahimahi trace of one integer ms timestamp per line)")
    raise DynsplitError(f"{p}: empty trace file")


def trace_files_in(folder: str | os.PathLike) -> list[Path]:
    """Trace files of a folder in sorted order: not sub-folders, dotfiles, README/COPYING/LICENSE, *.md."""
    d = Path(folder)
    out = []
    for f in sorted(d.iterdir()):
        low = f.name.lower()
        if f.is_dir() or low.startswith(".") or low.startswith(NON_TRACE_PREFIXES) or low.endswith(".md"):
            continue
        out.append(f)
    return out


def load_channel_file(path: str | os.PathLike, *, bin_s: float = 0.1) -> ChannelTrace:
    """Load one channel trace file, sniffing its format (:func:`sniff_channel_format`)."""
    fmt = sniff_channel_format(path)
    return load_mahimahi(path, bin_s=bin_s) if fmt == "mahimahi" else load_pensieve(path)


def load_channel(spec: str | os.PathLike, *, bin_s: float = 0.1, rate_scale: float = 1.0) -> list[ChannelTrace]:
    """Load channel traces from a file, a folder (every trace file, sorted) or a bundled name.

    Args:
        spec: path of a trace file or folder, or a name from :func:`dynsplit.envs.bundled.channel_names`.
            An existing path wins over a bundled name of the same spelling.
        bin_s: bin width in seconds for Mahimahi traces.
        rate_scale: every rate is multiplied by this (> 0).
    """
    from . import bundled

    if not (isinstance(rate_scale, (int, float)) and math.isfinite(rate_scale) and rate_scale > 0):
        raise DynsplitError(f"rate_scale {rate_scale!r} (expected a finite number > 0)")
    p = Path(spec)
    if p.is_dir():
        files = trace_files_in(p)
        if not files:
            raise DynsplitError(f"{p}: folder has no trace files")
    elif p.is_file():
        files = [p]
    elif str(spec) in bundled.channel_names():
        files = bundled.channel_files(str(spec))
    elif p.suffix or os.sep in str(spec):
        raise DynsplitError(f"{p}: no such trace file or folder")
    else:
        names = bundled.channel_names()
        raise DynsplitError(f"channel trace {str(spec)!r} is not a file, a folder or a bundled name"
                            f"{did_you_mean(str(spec), names)} (bundled: {', '.join(names)})")
    traces = [load_channel_file(f, bin_s=bin_s) for f in files]
    if rate_scale != 1.0:
        traces = [t.scaled(rate_scale) for t in traces]
    return traces


# ======================================================================================== summary
def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    cw = np.cumsum(weights[order])
    i = int(np.searchsorted(cw, q * cw[-1], side="left"))
    return float(values[order][min(i, values.size - 1)])


def _bin_rates(trace: ChannelTrace, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean rates (bit/s) and lengths (s) of consecutive ``bin_s`` bins over one period (last one shorter)."""
    edges = np.arange(0.0, trace.duration_s, bin_s)
    edges = np.append(edges, trace.duration_s)
    if edges.size >= 3 and edges[-1] - edges[-2] < 1e-9 * bin_s:
        edges = np.delete(edges, -2)
    bits = np.diff(trace._integral_np(edges))
    dur = np.diff(edges)
    return bits / dur, dur


def summarize(traces: ChannelTrace | Iterable[ChannelTrace], bin_s: float = 1.0) -> dict:
    """Summary statistics of channel traces, rates in bit/s over ``bin_s`` (default 1 s) bins.

    Returns ``files`` (number of traces), ``duration_s`` (sum of periods), time-weighted ``mean_bps``,
    ``median_bps``, ``p10_bps``, ``p90_bps`` (time-weighted quantiles over bins), ``min_bps``,
    ``max_bps`` (over bins), ``bin_s``, and ``traces``: one row per trace with ``name``, ``source``,
    ``duration_s``, ``segments``, ``mean_bps``, ``median_bps``, ``min_bps``, ``max_bps``.
    """
    tr = [traces] if isinstance(traces, ChannelTrace) else list(traces)
    if not tr:
        raise DynsplitError("no traces to summarise")
    rows, all_r, all_w = [], [], []
    for t in tr:
        r, w = _bin_rates(t, bin_s)
        all_r.append(r)
        all_w.append(w)
        rows.append({"name": t.name, "source": t.source, "duration_s": t.duration_s, "segments": t.n_segments,
                     "mean_bps": t.mean_rate_bps, "median_bps": _weighted_quantile(r, w, 0.5),
                     "min_bps": float(r.min()), "max_bps": float(r.max())})
    r = np.concatenate(all_r)
    w = np.concatenate(all_w)
    total_s = float(sum(t.duration_s for t in tr))
    return {
        "files": len(tr),
        "duration_s": total_s,
        "mean_bps": float(sum(t.bits_per_period for t in tr) / total_s),
        "median_bps": _weighted_quantile(r, w, 0.5),
        "p10_bps": _weighted_quantile(r, w, 0.1),
        "p90_bps": _weighted_quantile(r, w, 0.9),
        "min_bps": float(r.min()),
        "max_bps": float(r.max()),
        "bin_s": float(bin_s),
        "traces": rows,
    }
