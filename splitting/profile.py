"""The profile: measured times and sizes of every candidate split of one model (DESIGN §1.3).

A profile is a JSON file. It holds, for one model, input shape and codec set, every candidate (offload,
the kept natural bottlenecks, local) with its fx node, shape, element count, bytes on the wire per codec,
device-side time (head + encode, seconds) and server-side time per batch size (decode + tail, seconds
for the whole batch, which is the latency of every request in it), plus the host, torch version, thread
counts and repeats it was measured with. Loading validates the schema and names the file on any error.

Times are stored already scaled: ``device_head_s`` is the measured head time multiplied by the
``device.slowdown`` recorded in the metadata (1.0 when the device was measured on the real device).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic_files import write_json_atomic
from .errors import DynsplitError, did_you_mean

SCHEMA_NAME = "dynsplit.profile"
SCHEMA_VERSION = 1
KINDS = ("offload", "split", "local")


@dataclass(frozen=True)
class CandidateProfile:
    """Measured cost of one action.

    Attributes:
        index: action id (0 = offload, last = local).
        name: ``"offload"``, ``"local"`` or the fx node name of the bottleneck.
        kind: ``"offload"``, ``"split"`` or ``"local"``.
        node: fx node name (``None`` for offload and local).
        shape: shape of the transmitted tensor (the input for offload, ``()`` for local).
        dtype: dtype of the transmitted tensor (``"uint8"`` for offload, ``"none"`` for local).
        elements: element count of the transmitted tensor.
        bytes: bytes on the wire per codec spec (0 for local).
        device_head_s: device compute time of the head (seconds, slowdown applied; 0 for offload).
        device_encode_s: device time to encode the tensor per codec (seconds, slowdown applied).
        server_decode_s: server time to decode the tensor per codec (seconds).
        server_tail_s: server time of the tail for a whole batch, per batch size (seconds; 0 for local).
    """

    index: int
    name: str
    kind: str
    node: str | None
    shape: tuple[int, ...]
    dtype: str
    elements: int
    bytes: Mapping[str, int]
    device_head_s: float
    device_encode_s: Mapping[str, float]
    server_decode_s: Mapping[str, float]
    server_tail_s: Mapping[int, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "kind": self.kind,
            "node": self.node,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "elements": self.elements,
            "bytes": dict(self.bytes),
            "device_head_s": self.device_head_s,
            "device_encode_s": dict(self.device_encode_s),
            "server_decode_s": dict(self.server_decode_s),
            "server_tail_s": {str(b): t for b, t in sorted(self.server_tail_s.items())},
        }


@dataclass(frozen=True)
class Profile:
    """A whole profile; see the module docstring. ``device`` and ``server`` hold measurement metadata."""

    model: str
    input_shape: tuple[int, ...]
    compressive_only: bool
    codecs: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    candidates: tuple[CandidateProfile, ...]
    device: Mapping[str, Any] = field(default_factory=dict)
    server: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Candidate names in action order."""
        return [c.name for c in self.candidates]

    @property
    def n_actions(self) -> int:
        return len(self.candidates)

    def check_codec(self, codec: str) -> None:
        """Raise :class:`DynsplitError` if ``codec`` was not profiled."""
        if codec not in self.codecs:
            # Only on this error path (it imports torch): is the spec itself valid?
            from .codecs import get_codec

            get_codec(codec)
            raise DynsplitError(
                f"codec '{codec}' is not in the profile of {self.model} (profiled: {', '.join(self.codecs)})"
                f"{did_you_mean(codec, self.codecs)}; re-profile with --codecs {codec}"
            )

    def server_tail_s(self, index: int, batch: float) -> float:
        """Server tail time (seconds) of candidate ``index`` for a batch of ``batch`` requests.

        Linear interpolation between profiled batch sizes; linear extrapolation from the last two above
        the largest one (and the smallest one below it).
        """
        return interpolate_batch_time(self.candidates[index].server_tail_s, batch)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "input_shape": list(self.input_shape),
            "compressive_only": self.compressive_only,
            "codecs": list(self.codecs),
            "batch_sizes": list(self.batch_sizes),
            "device": dict(self.device),
            "server": dict(self.server),
            "candidates": [c.to_json() for c in self.candidates],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile as JSON atomically (temporary file, then rename)."""
        return write_json_atomic(path, self.to_json())


def interpolate_batch_time(times: Mapping[int, float], batch: float) -> float:
    """Piecewise-linear interpolation of a ``{batch size: seconds}`` table at ``batch``."""
    sizes = sorted(times)
    if len(sizes) == 1:
        return float(times[sizes[0]]) * batch / sizes[0]
    if batch <= sizes[0]:
        lo, hi = sizes[0], sizes[1]
    elif batch >= sizes[-1]:
        lo, hi = sizes[-2], sizes[-1]
    else:
        hi_i = next(i for i, s in enumerate(sizes) if s >= batch)
        lo, hi = sizes[hi_i - 1], sizes[hi_i]
    t_lo, t_hi = float(times[lo]), float(times[hi])
    value = t_lo + (t_hi - t_lo) * (batch - lo) / (hi - lo)
    return max(value, 0.0)


# ---------------------------------------------------------------------------------------------------------
# Loading and validation


def load_profile(path: str | os.PathLike[str], *, model: str | None = None) -> Profile:
    """Read and validate a profile file; with ``model`` also check that it is that model's profile."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DynsplitError(f"profile file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DynsplitError(f"cannot read profile file {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DynsplitError(f"profile file {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    profile = profile_from_json(data, source=str(path))
    if model is not None and profile.model != model:
        raise DynsplitError(f"profile file {path} is for model '{profile.model}', not '{model}'")
    return profile


def profile_from_json(data: Any, *, source: str = "<profile>") -> Profile:
    """Build a :class:`Profile` from parsed JSON, raising :class:`DynsplitError` on anything malformed."""

    def fail(what: str) -> DynsplitError:
        return DynsplitError(f"profile {source} is malformed: {what}")

    if not isinstance(data, dict) or data.get("schema") != SCHEMA_NAME:
        raise DynsplitError(f"{source} is not a dynsplit profile (expected \"schema\": \"{SCHEMA_NAME}\")")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DynsplitError(
            f"profile {source} has schema_version {version!r}; this dynsplit reads version {SCHEMA_VERSION} "
            "(re-run `dynsplit profile`)"
        )
    try:
        model = _expect(data, "model", str, fail)
        input_shape = tuple(int(v) for v in _expect(data, "input_shape", list, fail))
        codecs = tuple(str(c) for c in _expect(data, "codecs", list, fail))
        batch_sizes = tuple(int(b) for b in _expect(data, "batch_sizes", list, fail))
        raw_candidates = _expect(data, "candidates", list, fail)
        if not codecs:
            raise fail("'codecs' is empty")
        if not batch_sizes or any(b < 1 for b in batch_sizes):
            raise fail("'batch_sizes' must be positive integers")
        candidates = []
        for i, item in enumerate(raw_candidates):
            if not isinstance(item, dict):
                raise fail(f"candidate {i} is not an object")
            candidates.append(_candidate_from_json(item, i, codecs, batch_sizes, fail))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DynsplitError):
            raise
        raise fail(str(exc)) from None
    if len(candidates) < 2 or candidates[0].kind != "offload" or candidates[-1].kind != "local":
        raise fail("candidates must start with 'offload' and end with 'local'")
    return Profile(
        model=model,
        input_shape=input_shape,
        compressive_only=bool(data.get("compressive_only", True)),
        codecs=codecs,
        batch_sizes=batch_sizes,
        candidates=tuple(candidates),
        device=dict(data.get("device") or {}),
        server=dict(data.get("server") or {}),
    )


def _expect(data: Mapping[str, Any], key: str, kind: type, fail: Any) -> Any:
    if key not in data:
        raise fail(f"missing field '{key}'")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise fail(f"field '{key}' should be a {kind.__name__}, got {type(value).__name__}")
    return value


def _seconds(value: Any, where: str, fail: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise fail(f"{where} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _candidate_from_json(
    item: Mapping[str, Any], i: int, codecs: Sequence[str], batch_sizes: Sequence[int], fail: Any
) -> CandidateProfile:
    name = _expect(item, "name", str, fail)
    kind = _expect(item, "kind", str, fail)
    if kind not in KINDS:
        raise fail(f"candidate '{name}' has kind '{kind}', expected one of {', '.join(KINDS)}")
    if int(item.get("index", i)) != i:
        raise fail(f"candidate '{name}' has index {item.get('index')}, expected {i}")
    where = f"candidate '{name}'"
    sizes = _expect(item, "bytes", dict, fail)
    encode = _expect(item, "device_encode_s", dict, fail)
    decode = _expect(item, "server_decode_s", dict, fail)
    tail = _expect(item, "server_tail_s", dict, fail)
    for codec in codecs:
        for table, label in ((sizes, "bytes"), (encode, "device_encode_s"), (decode, "server_decode_s")):
            if codec not in table:
                raise fail(f"{where} has no {label} for codec '{codec}'")
    byte_table = {}
    for codec, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise fail(f"{where} bytes[{codec}] must be an integer >= 0, got {value!r}")
        byte_table[str(codec)] = value
    tail_table = {}
    for key, value in tail.items():
        try:
            batch = int(key)
        except ValueError:
            raise fail(f"{where} server_tail_s has batch size {key!r}, expected an integer") from None
        tail_table[batch] = _seconds(value, f"{where} server_tail_s[{key}]", fail)
    missing = [b for b in batch_sizes if b not in tail_table]
    if missing:
        raise fail(f"{where} has no server_tail_s for batch sizes {missing}")
    node = item.get("node")
    return CandidateProfile(
        index=i,
        name=name,
        kind=kind,
        node=None if node is None else str(node),
        shape=tuple(int(v) for v in item.get("shape", [])),
        dtype=str(item.get("dtype", "float32")),
        elements=int(item.get("elements", 0)),
        bytes=byte_table,
        device_head_s=_seconds(item.get("device_head_s"), f"{where} device_head_s", fail),
        device_encode_s={str(k): _seconds(v, f"{where} device_encode_s[{k}]", fail) for k, v in encode.items()},
        server_decode_s={str(k): _seconds(v, f"{where} server_decode_s[{k}]", fail) for k, v in decode.items()},
        server_tail_s=tail_table,
    )


def merge_profiles(device_profile: Profile, server_profile: Profile) -> Profile:
    """Combine a profile measured with ``--role device`` and one with ``--role server``.

    Device-side fields come from the first, server-side fields from the second; both must describe the
    same model, input shape and candidates.
    """
    if (device_profile.model, device_profile.input_shape) != (server_profile.model, server_profile.input_shape):
        raise DynsplitError(
            f"cannot merge profiles of different models: {device_profile.model} {device_profile.input_shape} "
            f"vs {server_profile.model} {server_profile.input_shape}"
        )
    if device_profile.names != server_profile.names:
        raise DynsplitError("cannot merge profiles whose candidates differ (were they made with the same options?)")
    codecs = tuple(c for c in device_profile.codecs if c in server_profile.codecs)
    if not codecs:
        raise DynsplitError("cannot merge profiles that share no codec")
    merged = []
    for dev, srv in zip(device_profile.candidates, server_profile.candidates, strict=True):
        merged.append(
            CandidateProfile(
                index=dev.index,
                name=dev.name,
                kind=dev.kind,
                node=dev.node,
                shape=dev.shape,
                dtype=dev.dtype,
                elements=dev.elements,
                bytes={c: dev.bytes[c] for c in codecs},
                device_head_s=dev.device_head_s,
                device_encode_s={c: dev.device_encode_s[c] for c in codecs},
                server_decode_s={c: srv.server_decode_s[c] for c in codecs},
                server_tail_s=dict(srv.server_tail_s),
            )
        )
    return Profile(
        model=device_profile.model,
        input_shape=device_profile.input_shape,
        compressive_only=device_profile.compressive_only,
        codecs=codecs,
        batch_sizes=server_profile.batch_sizes,
        candidates=tuple(merged),
        device=dict(device_profile.device),
        server=dict(server_profile.server),
    )
