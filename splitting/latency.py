"""The latency model of one request (DESIGN §1.2), shared by the environment, the baselines and the oracle.

For action ``a`` decided at time ``t`` (seconds), uplink rate trace ``R(t)`` (bit/s) and server load
``L`` in [0, 1]::

    local:    T = D_full
    offload:  T = X(b_in, t)             + S_full(L) + rtt
    split j:  T = D_j + X(b_j, t + D_j)  + S_j(L)    + rtt

``D_j`` is the device time (head + encode), ``S_j(L)`` the server time (decode + tail under load), ``b_j``
the bytes sent with the chosen codec and ``X(b, t0)`` the exact transfer time through the trace (the
smallest ``tau`` with ``integral_{t0}^{t0+tau} R = 8 b``). A transfer longer than ``max_transfer_s`` fails:
the device gives up after ``max_transfer_s`` and the request costs ``D_j + max_transfer_s``.

Server load models:

* ``batch``: the request is served in a batch of ``1 + round(L * (B_max - 1))`` requests and ``S_j`` is the
  profiled tail time of that batch (interpolated between profiled batch sizes);
* ``sharing``: processor sharing, ``S_j(L) = S_j(1) / (1 - min(L, 0.95))``.

Everything here is numpy; the channel is any object with ``transfer_time_s(nbytes, t0_s)`` and
``transfer_times_s(nbytes_array, t0_array)`` (see :class:`Channel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from .errors import DynsplitError, did_you_mean
from .profile import Profile

LOAD_MODELS = ("batch", "sharing")
SHARING_MAX_LOAD = 0.95


class Channel(Protocol):
    """What the latency model needs from an uplink trace."""

    def transfer_time_s(self, nbytes: float, t0_s: float) -> float: ...

    def transfer_times_s(self, nbytes: np.ndarray, t0_s: np.ndarray | float) -> np.ndarray: ...


class Breakdown(NamedTuple):
    """Latency of one request and its parts (seconds, bytes)."""

    latency_s: float
    device_s: float
    transfer_s: float
    server_s: float
    bytes: int
    failed: bool


class Evaluation(NamedTuple):
    """Every action's latency for one request, as arrays indexed by action (seconds)."""

    latency_s: np.ndarray
    device_s: np.ndarray
    transfer_s: np.ndarray
    server_s: np.ndarray
    failed: np.ndarray
    bytes: list[int]

    def breakdown(self, action: int) -> Breakdown:
        """The :class:`Breakdown` of one action."""
        return Breakdown(float(self.latency_s[action]), float(self.device_s[action]), float(self.transfer_s[action]),
                         float(self.server_s[action]), self.bytes[action], bool(self.failed[action]))


@dataclass(frozen=True)
class LatencyConfig:
    """Options of the latency model.

    Attributes:
        codec: codec spec used on the wire (must be in the profile).
        load_model: ``"batch"`` or ``"sharing"``.
        max_batch: ``B_max`` of the batch model (``None``: the largest profiled batch size).
        rtt_s: fixed propagation delay added to every request that uses the server (seconds).
        max_transfer_s: bound on one transfer (seconds); longer transfers fail.
    """

    codec: str = "raw"
    load_model: str = "batch"
    max_batch: int | None = None
    rtt_s: float = 0.010
    max_transfer_s: float = 30.0


class LatencyModel:
    """Evaluates DESIGN §1.2 for every action of one profile.

    Per-action constants are precomputed as arrays: ``bytes`` (int64), ``device_s``, and the server time
    as a function of load. ``uses_server`` is False only for ``local``.
    """

    def __init__(self, profile: Profile, config: LatencyConfig | None = None) -> None:
        config = config or LatencyConfig()
        profile.check_codec(config.codec)
        if config.load_model not in LOAD_MODELS:
            raise DynsplitError(
                f"unknown load model '{config.load_model}'; expected one of {', '.join(LOAD_MODELS)}"
                f"{did_you_mean(config.load_model, LOAD_MODELS)}"
            )
        if config.rtt_s < 0 or config.max_transfer_s <= 0:
            raise DynsplitError("rtt_s must be >= 0 and max_transfer_s > 0 (seconds)")
        self.profile = profile
        self.config = config
        codec = config.codec
        cands = profile.candidates
        self.names = [c.name for c in cands]
        self.n_actions = len(cands)
        self.uses_server = np.array([c.kind != "local" for c in cands])
        self.bytes = np.array([c.bytes[codec] if c.kind != "local" else 0 for c in cands], dtype=np.int64)
        self.device_s = np.array([c.device_head_s + (c.device_encode_s[codec] if c.kind != "local" else 0.0)
                                  for c in cands])
        self.max_batch = int(config.max_batch or max(profile.batch_sizes))
        if self.max_batch < 1:
            raise DynsplitError(f"max_batch must be >= 1, got {self.max_batch}")
        decode = np.array([c.server_decode_s[codec] if c.kind != "local" else 0.0 for c in cands])
        # Server time per action for every batch size 1..B_max (rows), so the batch model is a lookup.
        self._server_by_batch = np.array([
            [decode[i] + (profile.server_tail_s(i, b) if self.uses_server[i] else 0.0) for i in range(self.n_actions)]
            for b in range(1, self.max_batch + 1)
        ])
        self._server_unloaded = self._server_by_batch[0]
        self.rtt_s = np.where(self.uses_server, config.rtt_s, 0.0)
        self._rtt = float(config.rtt_s)
        self._max_transfer = float(config.max_transfer_s)
        self._sharing = config.load_model == "sharing"
        # Plain Python copies for the scalar path (faster than numpy indexing for one element).
        self._bytes_list = self.bytes.tolist()
        self._bits = 8.0 * self.bytes
        self._device_list = self.device_s.tolist()
        self._uses_server_list = self.uses_server.tolist()

    # -- server side --------------------------------------------------------------------------------------
    def batch_size(self, load: float) -> int:
        """Batch size of the ``batch`` load model for load ``L`` in [0, 1]."""
        return 1 + int(round(min(max(load, 0.0), 1.0) * (self.max_batch - 1)))

    def server_s(self, load: float) -> np.ndarray:
        """Server time of every action at load ``load`` (seconds; 0 for local)."""
        if self._sharing:
            return self._server_unloaded / (1.0 - min(max(load, 0.0), SHARING_MAX_LOAD))
        return self._server_by_batch[self.batch_size(load) - 1]

    # -- exact latency through a trace ------------------------------------------------------------------------
    def evaluate(self, t_s: float, channel: Channel, load: float) -> Evaluation:
        """Exact latency of every action decided at ``t_s`` (seconds), with its parts.

        The oracle takes the argmin of ``Evaluation.latency_s``; ``Evaluation.breakdown(a)`` is the same
        :class:`Breakdown` that :meth:`latency` returns for action ``a``.
        """
        transfer = channel.transfer_times_s(self.bytes, t_s + self.device_s)
        failed = transfer > self._max_transfer
        server = self.server_s(load)
        if failed.any():
            transfer = np.minimum(transfer, self._max_transfer)
            server = np.where(failed, 0.0, server)
            total = np.where(failed, self.device_s + self._max_transfer, self.device_s + transfer + server + self.rtt_s)
        else:
            total = self.device_s + transfer + server + self.rtt_s
        return Evaluation(total, self.device_s, transfer, server, failed, self._bytes_list)

    def latencies(self, t_s: float, channel: Channel, load: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(latency_s, transfer_s, failed)`` arrays of every action decided at ``t_s`` (see :meth:`evaluate`)."""
        ev = self.evaluate(t_s, channel, load)
        return ev.latency_s, ev.transfer_s, ev.failed

    def latency(self, action: int, t_s: float, channel: Channel, load: float) -> Breakdown:
        """Exact latency of one action decided at ``t_s`` and its parts."""
        device = self._device_list[action]
        if not self._uses_server_list[action]:
            return Breakdown(device, device, 0.0, 0.0, 0, False)
        nbytes = self._bytes_list[action]
        transfer = channel.transfer_time_s(nbytes, t_s + device) if nbytes else 0.0
        if transfer > self._max_transfer:
            return Breakdown(device + self._max_transfer, device, self._max_transfer, 0.0, nbytes, True)
        server = float(self.server_s(load)[action])
        return Breakdown(device + transfer + server + self._rtt, device, transfer, server, nbytes, False)

    # -- estimates for analytic selectors ------------------------------------------------------------------
    def estimate(self, rate_bps: float, load: float) -> np.ndarray:
        """Latency of every action if the rate stayed ``rate_bps`` (bit/s) and the load ``load``."""
        transfer = self._bits / max(float(rate_bps), 1e-9)
        total = self.device_s + transfer + self.server_s(load) + self.rtt_s
        failed = transfer > self._max_transfer
        if failed.any():
            total[failed] = self.device_s[failed] + self._max_transfer
        return total

    @property
    def local_latency_s(self) -> float:
        """Latency of running the whole model on the device (seconds): the env's reward scale."""
        return float(self.device_s[-1])
