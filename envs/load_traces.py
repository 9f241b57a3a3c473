"""Server load traces: a piecewise-constant load ``L(t)`` in [0, 1] that loops at its end.

Units inside the code: seconds; load is a fraction of the server's capacity (0 idle, 1 saturated).
Files give utilisation in percent, as a fraction, or in arbitrary units ("relative", divided by the
column's maximum) and are converted on load.

* :class:`LoadTrace` -- the representation; :meth:`LoadTrace.value_at` and
  :meth:`LoadTrace.values_before` (the controller's load history) are the hot-path calls.
* :func:`load_load_csv` -- a CSV file with a header row; one trace per load column.
* :func:`load_load` -- a file, a bundled name (:mod:`dynsplit.envs.bundled`) or a constant ("0.3").

numpy-only (no torch).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..splitting.errors import DynsplitError, did_you_mean
from .traces import PiecewiseConstant, _durations_from_times, _label, _read_csv

#: Units of :func:`load_load_csv`: ``percent`` (/100), ``fraction`` (as is), ``relative`` (/ column max).
LOAD_UNITS = ("percent", "fraction", "relative")
#: Column names taken as the time column (seconds) when present.
TIME_COLUMNS = ("time_s", "timestamp")


class LoadTrace(PiecewiseConstant):
    """Piecewise-constant server load in [0, 1] that loops at its end.

    ``values[i]`` holds on ``[starts_s[i], starts_s[i] + durations_s[i])``; the period is
    ``duration_s``. Times outside one period wrap around.

    Args:
        durations_s: segment lengths in seconds (> 0).
        values: load per segment, each in [0, 1].
        name: short name.
        source: where it came from.
    """

    _what = "load"

    def _check_values(self, v: np.ndarray, label: str) -> None:
        bad = np.flatnonzero((v < 0) | (v > 1))
        if bad.size:
            i = int(bad[0])
            raise DynsplitError(f"{label}: segment {i} has load {float(v[i])!r} (expected a value in [0, 1])")

    @classmethod
    def from_times(cls, times_s: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
                   name: str, source: str = "") -> LoadTrace:
        """Build from sample times (s, strictly increasing, shifted to 0): ``values[i]`` holds from
        ``times_s[i]`` to the next sample; the last one for the median step."""
        return cls(_durations_from_times(times_s, _label(str(name), str(source))), values, name, source)

    @property
    def values(self) -> np.ndarray:
        """Load per segment in [0, 1], shape ``(n_segments,)``, read-only."""
        return self._values

    @property
    def mean_value(self) -> float:
        """Time-weighted mean load over one period."""
        return self._total / self._period

    def value_at(self, t_s: float) -> float:
        """Load at time ``t_s`` (seconds, wraps around)."""
        return self._value_at(t_s)

    def values_before(self, t_s: float, k: int, bin_s: float = 1.0) -> np.ndarray:
        """Mean load over each of the last ``k`` bins of ``bin_s`` seconds before ``t_s``, oldest first.

        Shape ``(k,)``; only the load before ``t_s`` is used; bins before 0 wrap around the loop.
        """
        return self._means_before(t_s, k, bin_s)

    def mean_between(self, t0_s: float, t1_s: float) -> float:
        """Mean load over ``[t0_s, t1_s]`` (seconds, ``t1_s > t0_s``)."""
        if not t1_s > t0_s:
            raise DynsplitError(f"mean load over [{t0_s!r}, {t1_s!r}] s (expected t1 > t0)")
        return self._integral_between(t0_s, t1_s) / (t1_s - t0_s)


def constant_load(value: float, duration_s: float = 1.0, name: str | None = None) -> LoadTrace:
    """A constant load ``value`` in [0, 1] (one segment of ``duration_s`` seconds)."""
    v = float(value)
    return LoadTrace([duration_s], [v], name or f"constant-{v:g}", "constant")


def load_load_csv(path: str | os.PathLike, column: str | None = None, unit: str = "percent",
                  interval_s: float | None = None, time_column: str | None = None) -> list[LoadTrace]:
    """Load server-load traces from a CSV file with a header row.

    Time: ``time_column`` if given; else a column named ``time_s`` or ``timestamp`` (seconds) when the
    file has one; else every row lasts ``interval_s`` seconds (then required). Times are shifted to
    start at 0 and the last row lasts the median step.

    Args:
        column: the load column; ``None`` = every column except the time column, one trace each.
        unit: ``percent`` (divided by 100), ``fraction`` (as is) or ``relative`` (divided by the
            column's maximum, for sums in arbitrary units).

    Returns one :class:`LoadTrace` per column, named ``<file stem>:<column>``. Values outside [0, 1]
    after conversion, and non-numbers, raise :class:`DynsplitError` naming file, line and column.
    """
    p = Path(path)
    if unit not in LOAD_UNITS:
        raise DynsplitError(f"load unit {unit!r} (expected one of {', '.join(LOAD_UNITS)}){did_you_mean(unit, LOAD_UNITS)}")
    header, rows = _read_csv(p)
    if time_column is None:
        time_column = next((c for c in TIME_COLUMNS if c in header), None)
        if time_column is not None and interval_s is not None:
            raise DynsplitError(f"{p}: has a time column {time_column!r}; interval_s={interval_s!r} is ambiguous "
                                "(expected only one way of giving time)")
    elif interval_s is not None:
        raise DynsplitError(f"{p}: give time_column or interval_s, not both")
    if time_column is not None and time_column not in header:
        raise DynsplitError(f"{p}: no time column {time_column!r}{did_you_mean(time_column, header)} "
                            f"(columns: {', '.join(header)})")
    if time_column is None:
        if interval_s is None:
            raise DynsplitError(f"{p}: no time column ({' or '.join(TIME_COLUMNS)}) and no interval_s "
                                "(expected the seconds between rows)")
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise DynsplitError(f"{p}: interval_s={interval_s!r} (expected a finite number of seconds > 0)")
    if column is None:
        columns = [c for c in header if c != time_column]
    elif column not in header:
        raise DynsplitError(f"{p}: no load column {column!r}{did_you_mean(column, header)} (columns: {', '.join(header)})")
    else:
        columns = [column]
    if not columns:
        raise DynsplitError(f"{p}: no load column besides the time column {time_column!r}")
    if not rows:
        raise DynsplitError(f"{p}: no data rows (expected a header row and at least one row)")

    index = {c: header.index(c) for c in columns}
    data = np.empty((len(rows), len(columns)))
    for r, (lineno, fields) in enumerate(rows):
        for c_i, c in enumerate(columns):
            s = fields[index[c]].strip()
            try:
                v = float(s)
            except ValueError:
                raise DynsplitError(f"{p}:{lineno}: column {c!r} has {s[:40]!r} (expected a number)") from None
            if not math.isfinite(v):
                raise DynsplitError(f"{p}:{lineno}: column {c!r} has {s!r} (expected a finite {unit} load)")
            data[r, c_i] = v
    if unit == "percent":
        data = data / 100.0
    elif unit == "relative":
        for c_i, c in enumerate(columns):
            top = data[:, c_i].max()
            if not top > 0:
                raise DynsplitError(f"{p}: column {c!r} has maximum {float(top)!r} (expected a positive maximum to "
                                    "divide a relative load by)")
            data[:, c_i] /= top
    bad = np.argwhere((data < 0) | (data > 1))
    if bad.size:
        r, c_i = (int(x) for x in bad[0])
        raw = rows[r][1][index[columns[c_i]]].strip()
        raise DynsplitError(f"{p}:{rows[r][0]}: column {columns[c_i]!r} has {raw} = load {data[r, c_i]:.6g} "
                            f"with unit {unit!r} (expected a load in [0, 1])")

    if time_column is not None:
        t_i = header.index(time_column)
        times = []
        for lineno, fields in rows:
            s = fields[t_i].strip()
            try:
                t = float(s)
            except ValueError:
                raise DynsplitError(f"{p}:{lineno}: column {time_column!r} has {s[:40]!r} (expected seconds)") from None
            if not math.isfinite(t) or (times and t <= times[-1]):
                raise DynsplitError(f"{p}:{lineno}: time {s!r} s (expected finite times increasing from row to row)")
            times.append(t)
        durations = _durations_from_times(times, str(p)) if len(times) > 1 else None
        if durations is None:
            raise DynsplitError(f"{p}: one timed row (expected at least two to know how long it lasts)")
    else:
        durations = np.full(len(rows), float(interval_s))
    stem = p.name[:-4] if p.name.lower().endswith(".csv") else p.name
    return [LoadTrace(durations, data[:, c_i], f"{stem}:{c}", str(p)) for c_i, c in enumerate(columns)]


def load_load(spec: str | float | os.PathLike, *, column: str | None = None, unit: str = "percent",
              interval_s: float | None = None) -> list[LoadTrace]:
    """Server-load traces from a CSV file, a bundled name or a constant.

    Args:
        spec: a number or a numeric string in [0, 1] (e.g. ``"0.3"``: a constant load), a path of a CSV
            file (read with :func:`load_load_csv` and the other arguments), or a name from
            :func:`dynsplit.envs.bundled.load_names` (which brings its own column, unit and interval).
    """
    from . import bundled

    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return [_constant_checked(float(spec), str(spec))]
    s = str(spec)
    p = Path(s)
    if p.is_file():
        return load_load_csv(p, column=column, unit=unit, interval_s=interval_s)
    if s in bundled.load_names():
        path, options = bundled.load_file(s)
        return load_load_csv(path, **options)
    try:
        v = float(s)
    except ValueError:
        names = bundled.load_names()
        if p.suffix or os.sep in s:
            raise DynsplitError(f"{s}: no such load file") from None
        raise DynsplitError(f"load {s!r} is not a number in [0, 1], a CSV file or a bundled name"
                            f"{did_you_mean(s, names)} (bundled: {', '.join(names)})") from None
    return [_constant_checked(v, s)]


def _constant_checked(v: float, text: str) -> LoadTrace:
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise DynsplitError(f"constant load {text!r} (expected a number in [0, 1])")
    return constant_load(v)
