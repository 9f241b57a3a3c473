"""Execution backends of the environment: where the time of one request comes from.

* :class:`ProfiledBackend` (default) reads device and server times from a profile through the shared
  :class:`~dynsplit.splitting.latency.LatencyModel`: fast and deterministic.
* :class:`LiveBackend` really runs the chosen head and tail on real tensors, really encodes and decodes the
  transmitted tensor with the chosen codec and times both sides (device time multiplied by the profile's
  device slowdown); only the channel time comes from the trace. Its ``extra`` info carries the profiled
  times of the same request next to the measured ones.

A backend is any object with ``execute(action, t_s, channel, load) -> (Breakdown, extra_info)``; a later
networked testbed (tail in a server process behind a rate-shaped link) slots in as a third one.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from dynsplit.splitting.errors import DynsplitError
from dynsplit.splitting.latency import Breakdown, Channel, Evaluation, LatencyModel

BACKENDS = ("profiled", "live")


class Backend(Protocol):
    """Runs (or looks up) one request. ``evaluation`` is the profiled latency of every action for this
    request, which the env computes anyway for the oracle; a backend may reuse it."""

    def execute(self, action: int, t_s: float, channel: Channel, load: float,
                evaluation: Evaluation | None = None) -> tuple[Breakdown, dict[str, Any]]: ...


class ProfiledBackend:
    """Times from the profile (DESIGN §1.2)."""

    def __init__(self, latency_model: LatencyModel) -> None:
        self.latency_model = latency_model

    def execute(self, action: int, t_s: float, channel: Channel, load: float,
                evaluation: Evaluation | None = None) -> tuple[Breakdown, dict[str, Any]]:
        if evaluation is not None:
            return evaluation.breakdown(action), {}
        return self.latency_model.latency(action, t_s, channel, load), {}


class LiveBackend:
    """Real split execution on this host: head, encode, decode and tail are run and timed every step.

    Args:
        latency_model: the profiled model of the same profile (for the batch size, rtt, bounds and the
            profiled comparison in ``info``).
        model: the model name or ``package.module:callable`` (default: the profile's model).
        images_dir: folder of images to feed (any format PIL reads); default seeded random images.
        seed: seed of the random images.
        device_threads: torch threads on the device side (the server side uses all threads).
    """

    def __init__(
        self,
        latency_model: LatencyModel,
        model: str | None = None,
        images_dir: str | None = None,
        seed: int = 0,
        device_threads: int = 1,
    ) -> None:
        import torch

        from dynsplit.splitting.codecs import get_codec
        from dynsplit.splitting.graph import split_graph_for
        from dynsplit.splitting.inputs import random_images

        profile = latency_model.profile
        self.latency_model = latency_model
        self._torch = torch
        self.graph = split_graph_for(model or profile.model, input_shape=tuple(profile.input_shape),
                                     compressive_only=profile.compressive_only)
        names = [c.name for c in self.graph.candidates]
        if names != profile.names:
            raise DynsplitError(
                f"live backend: the split graph of '{profile.model}' has candidates {names}, "
                f"but the profile has {profile.names} (re-profile the model)"
            )
        self.codec = get_codec(latency_model.config.codec)
        self.slowdown = float(profile.device.get("slowdown", 1.0))
        self.device_threads = int(device_threads)
        if images_dir is not None:
            self.images = _load_images(images_dir, tuple(profile.input_shape))
        else:
            self.images = random_images((16, *profile.input_shape[1:]), seed=seed)
        self._next_image = 0
        self._modules = {c.index: self.graph.split(c) for c in self.graph.candidates}

    def execute(self, action: int, t_s: float, channel: Channel, load: float,
                evaluation: Evaluation | None = None) -> tuple[Breakdown, dict[str, Any]]:
        from dynsplit.splitting.inputs import to_model_input

        torch = self._torch
        lm = self.latency_model
        cand = self.graph.candidates[action]
        head, tail = self._modules[action]
        image = self.images[self._next_image % len(self.images)].unsqueeze(0)
        self._next_image += 1
        server_threads = torch.get_num_threads()
        with torch.no_grad():
            torch.set_num_threads(self.device_threads)
            start = time.perf_counter()
            if cand.kind == "offload":
                sent = image
            else:
                sent = head(to_model_input(image))
            frame = self.codec.encode(sent) if cand.kind != "local" else b""
            device_s = (time.perf_counter() - start) * self.slowdown
            torch.set_num_threads(server_threads)
            profiled = evaluation.breakdown(action) if evaluation is not None else lm.latency(action, t_s, channel, load)
            extra = {"profiled_latency_s": profiled.latency_s, "profiled_device_s": profiled.device_s,
                     "profiled_server_s": profiled.server_s}
            if cand.kind == "local":
                return Breakdown(device_s, device_s, 0.0, 0.0, 0, False), extra
            transfer_s = channel.transfer_time_s(len(frame), t_s + device_s)
            if transfer_s > lm.config.max_transfer_s:
                bound = lm.config.max_transfer_s
                return Breakdown(device_s + bound, device_s, bound, 0.0, len(frame), True), extra
            batch = lm.batch_size(load) if lm.config.load_model == "batch" else 1
            start = time.perf_counter()
            received = self.codec.decode(frame)
            if cand.kind == "offload":
                received = to_model_input(received)
            if batch > 1:
                received = received.repeat(batch, *([1] * (received.dim() - 1)))
            tail(received)
            server_s = time.perf_counter() - start
            if lm.config.load_model == "sharing":
                server_s /= 1.0 - min(max(load, 0.0), 0.95)
        latency = device_s + transfer_s + server_s + lm.config.rtt_s
        return Breakdown(latency, device_s, transfer_s, server_s, len(frame), False), extra


def _load_images(folder: str, input_shape: tuple[int, ...]):
    """Read every image in ``folder`` as uint8 CHW tensors resized to the input's height and width."""
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image

    if not Path(folder).is_dir():
        raise DynsplitError(f"image folder {folder} does not exist or is not a folder")
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".ppm"})
    if not paths:
        raise DynsplitError(f"image folder {folder} holds no .png/.jpg/.jpeg/.bmp/.ppm files")
    height, width = input_shape[-2], input_shape[-1]
    tensors = []
    for path in paths:
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB").resize((width, height)), dtype=np.uint8)
        except OSError as exc:
            raise DynsplitError(f"cannot read image {path}: {exc}") from None
        tensors.append(torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous())
    return torch.stack(tensors)
