"""Named datasets shipped inside the package (``dynsplit/envs/data``), with their licences.

Channel names (load with :func:`dynsplit.envs.traces.load_channel`):

=========================  =====  ===============================================================
name                       files  contents
=========================  =====  ===============================================================
``pensieve-train``          127   Pensieve training split: FCC broadband (5 s steps) + Norway HSDPA
``pensieve-test``           142   Pensieve test split: Norway HSDPA 3G slices (about 1 s steps)
``pensieve-fcc``             59   the FCC files of the training split (``trace_*``)
``pensieve-norway``          68   the Norway files of the training split (the rest)
``mahimahi-lte``              9   every Mahimahi LTE trace (uplink and downlink)
``mahimahi-lte-up``           4   the uplink (``.up``) traces
``mahimahi-lte-down``         5   the downlink (``.down``) traces
``mahimahi-lte-up-train``     2   ATT-LTE-driving.up (1012 s) + TMobile-LTE-short.up (140 s)
``mahimahi-lte-up-test``      2   ATT-LTE-driving-2016.up (120 s) + Verizon-LTE-short.up (140 s)
=========================  =====  ===============================================================

The uplink train/test split is by file, so that no second of a test trace is seen in training: the train
half (1152 s) holds the long ATT drive and the fastest trace (T-Mobile, mean about 13 Mbit/s); the test
half (260 s) holds a different ATT drive and the one Verizon trace -- an unseen carrier -- whose mean
rates (about 1.9 and 5.9 Mbit/s) lie between those of the training traces.

Load names (load with :func:`dynsplit.envs.load_traces.load_load`):

================  =====  =======================================================================
name              files  contents
================  =====  =======================================================================
``azure-vm-avg``    1    Azure V1 per-VM average CPU %, 5 min, 8 VMs -> 8 traces (idle to busy)
``azure-vm-max``    1    Azure V1 per-VM maximum CPU %, 5 min, the same 8 VMs -> 8 traces
``google2019``      1    Google 2019 cell-wide ``avg_cpu`` (fraction), 5 min, one week -> 1 trace
``azure-v2``        1    Azure V2 total ``cpu_usage``, 5 min, 30 days, divided by its maximum -> 1 trace
================  =====  =======================================================================

Sources, commits and licences per family are in ``data/ATTRIBUTION.md``. This module only knows file
names and loader arguments; it imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from ..splitting.errors import DynsplitError, did_you_mean

PENSIEVE_LICENCE = "MIT (Pensieve repository; data/channel/pensieve/LICENSE)"
MAHIMAHI_LICENCE = "GPL-3.0-or-later (Mahimahi repository; data/channel/mahimahi_lte/COPYING)"
CC_BY = "CC-BY-4.0 (attribution in data/ATTRIBUTION.md)"

UP_TRAIN = ("ATT-LTE-driving.up.gz", "TMobile-LTE-short.up.gz")
UP_TEST = ("ATT-LTE-driving-2016.up.gz", "Verizon-LTE-short.up.gz")


def data_dir() -> Path:
    """Folder of the bundled data files."""
    return Path(str(files("dynsplit.envs") / "data"))


@dataclass(frozen=True)
class _Channel:
    folder: str
    description: str
    licence: str
    prefix: str = ""  # keep files whose name starts with this ("" = all)
    exclude_prefix: str = ""  # drop files whose name starts with this
    suffix: str = ""  # keep files whose name ends with this ("" = all)
    only: tuple[str, ...] = ()  # keep exactly these file names


@dataclass(frozen=True)
class _Load:
    file: str
    description: str
    licence: str
    options: dict = field(default_factory=dict)  # keyword arguments of load_load_csv


_CHANNELS: dict[str, _Channel] = {
    "pensieve-train": _Channel("channel/pensieve/train", "Pensieve training split: FCC broadband "
                               "(5 s steps) and Norway HSDPA 3G (about 1 s steps), Mbit/s", PENSIEVE_LICENCE),
    "pensieve-test": _Channel("channel/pensieve/test", "Pensieve test split: Norway HSDPA 3G slices "
                              "(about 1 s steps), Mbit/s", PENSIEVE_LICENCE),
    "pensieve-fcc": _Channel("channel/pensieve/train", "FCC broadband files of the Pensieve training split "
                             "(5 s steps)", PENSIEVE_LICENCE, prefix="trace_"),
    "pensieve-norway": _Channel("channel/pensieve/train", "Norway HSDPA 3G files of the Pensieve training "
                                "split (about 1 s steps)", PENSIEVE_LICENCE, exclude_prefix="trace_"),
    "mahimahi-lte": _Channel("channel/mahimahi_lte", "all Mahimahi LTE traces (uplink and downlink), 1 ms "
                             "delivery opportunities binned to a rate", MAHIMAHI_LICENCE),
    "mahimahi-lte-up": _Channel("channel/mahimahi_lte", "Mahimahi LTE uplink traces", MAHIMAHI_LICENCE,
                                suffix=".up.gz"),
    "mahimahi-lte-down": _Channel("channel/mahimahi_lte", "Mahimahi LTE downlink traces", MAHIMAHI_LICENCE,
                                  suffix=".down.gz"),
    "mahimahi-lte-up-train": _Channel("channel/mahimahi_lte", "Mahimahi LTE uplink, training half: "
                                      "ATT-LTE-driving.up + TMobile-LTE-short.up (1152 s)", MAHIMAHI_LICENCE,
                                      only=UP_TRAIN),
    "mahimahi-lte-up-test": _Channel("channel/mahimahi_lte", "Mahimahi LTE uplink, test half: "
                                     "ATT-LTE-driving-2016.up + Verizon-LTE-short.up (260 s)", MAHIMAHI_LICENCE,
                                     only=UP_TEST),
}

_LOADS: dict[str, _Load] = {
    "azure-vm-avg": _Load("load/azure_v1_vm_cpu/azure_v1_vm_cpu_avg_5min.csv",
                          "Azure V1 per-VM average CPU % over 5 min, 8 VMs (8 traces), ~27.8 days", CC_BY,
                          {"unit": "percent"}),
    "azure-vm-max": _Load("load/azure_v1_vm_cpu/azure_v1_vm_cpu_max_5min.csv",
                          "Azure V1 per-VM maximum CPU % over 5 min, 8 VMs (8 traces), ~27.8 days", CC_BY,
                          {"unit": "percent"}),
    "google2019": _Load("load/google2019/instance_usage_grouped_300_seconds_week1.csv",
                        "Google 2019 cell-wide avg_cpu (fraction of capacity), 5 min, week 1", CC_BY,
                        {"column": "avg_cpu", "unit": "fraction", "interval_s": 300.0}),
    "azure-v2": _Load("load/azure_v2/vm_cpu_readings_month_aggregated_cpu_mem.csv",
                      "Azure V2 total cpu_usage over all VMs, 5 min, 30 days, divided by its maximum", CC_BY,
                      {"column": "cpu_usage", "unit": "relative"}),
}


def channel_names() -> list[str]:
    """Names of the bundled channel-trace sets."""
    return list(_CHANNELS)


def load_names() -> list[str]:
    """Names of the bundled server-load sets."""
    return list(_LOADS)


def _unknown(kind: str, name: str, names: list[str]) -> DynsplitError:
    return DynsplitError(f"unknown bundled {kind} {name!r}{did_you_mean(name, names)} (known: {', '.join(names)})")


def channel_files(name: str) -> list[Path]:
    """Files of a bundled channel set, in sorted order."""
    if name not in _CHANNELS:
        raise _unknown("channel trace set", name, channel_names())
    from .traces import trace_files_in

    c = _CHANNELS[name]
    out = []
    for f in trace_files_in(data_dir() / c.folder):
        n = f.name
        if c.only and n not in c.only:
            continue
        if (c.prefix and not n.startswith(c.prefix)) or (c.exclude_prefix and n.startswith(c.exclude_prefix)):
            continue
        if c.suffix and not n.endswith(c.suffix):
            continue
        out.append(f)
    if not out:  # a packaging mistake, not a user one
        raise FileNotFoundError(f"bundled channel set {name!r} has no files under {data_dir() / c.folder}")
    return out


def load_file(name: str) -> tuple[Path, dict]:
    """File and :func:`dynsplit.envs.load_traces.load_load_csv` keyword arguments of a bundled load set."""
    if name not in _LOADS:
        raise _unknown("load trace set", name, load_names())
    entry = _LOADS[name]
    return data_dir() / entry.file, dict(entry.options)


def describe_bundled() -> list[dict]:
    """One dict per bundled set: ``name``, ``kind`` (channel or load), ``files`` (count), ``description``,
    ``licence``."""
    rows = [{"name": n, "kind": "channel", "files": len(channel_files(n)), "description": c.description,
             "licence": c.licence} for n, c in _CHANNELS.items()]
    rows += [{"name": n, "kind": "load", "files": 1, "description": e.description, "licence": e.licence}
             for n, e in _LOADS.items()]
    return rows
