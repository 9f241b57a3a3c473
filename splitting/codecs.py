"""Codecs for the one tensor that crosses the network at a split.

A codec spec is a string ``CODEC[+COMPRESSOR]``:

* ``raw`` sends the tensor's own dtype bytes (lossless);
* ``float16`` casts floating tensors to IEEE half precision (finite values beyond the float16 range
  saturate to +-65504 instead of overflowing to infinity);
* ``int8`` quantizes floating tensors per tensor, affinely, to 8-bit codes:
  ``q = round((x - min) / scale)``, ``x_hat = min + q * scale`` with ``scale = (max - min) / 255``, so
  every element is off by at most ``scale / 2`` (plus float32 rounding of the two parameters).
  NaN and infinity cannot be quantized and raise :class:`DynsplitError`.

Lossy codecs quantize **floating** tensors only: integer and boolean tensors (such as the uint8 camera
image sent by the ``offload`` action) always travel losslessly in their own dtype. The optional lossless
compressor (``+zlib``, ``+zstd``, ``+lzma``; each at its library's default level, see ``*_LEVEL``)
compresses the payload.

Frames are self-describing binary, never pickle. All integers are little-endian::

    offset  size        field
    0       4           magic b"DSPL"
    4       1   uint8   format version (FORMAT_VERSION)
    5       1   uint8   codec id        (0 raw, 1 float16, 2 int8)
    6       1   uint8   compressor id   (0 none, 1 zlib, 2 zstd, 3 lzma)
    7       1   uint8   dtype code of the original tensor (see DTYPE_CODES)
    8       1   uint8   dtype code of the payload elements ("wire dtype")
    9       1   uint8   ndim (<= MAX_NDIM)
    10      1   uint8   number of float32 codec parameters P (int8 of a floating tensor: 2, else 0)
    11      1   uint8   reserved, 0
    12      4   uint32  header length H in bytes = offset of the payload
    16      8*ndim      uint64 shape dims
    ..      4*P         float32 parameters (int8: scale, then min)
    ..      4*pad       zero padding so that H is a multiple of 8
    H-8     8   uint64  payload length in bytes (after compression, if any)
    H       ...         payload: the wire-dtype elements in C order (compressed if a compressor is set)

The header of an uncompressed frame therefore takes ``24 + 8 * ndim`` bytes (``+ 8`` for int8 of a
floating tensor); a 1x64x56x56 float32 activation under ``raw`` is a 56-byte header plus 802,816 payload
bytes. Units: sizes in bytes throughout.

Decoding validates magic, version, ids, dtype codes, lengths and the consistency of codec and dtypes, and
raises :class:`DynsplitError` (``corrupt frame: ...``) for anything truncated, padded, foreign or
inconsistent; it returns a contiguous CPU tensor of the original dtype and shape.
"""

from __future__ import annotations

import functools
import lzma
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import DynsplitError, did_you_mean

__all__ = [
    "CODEC_NAMES",
    "COMPRESSOR_NAMES",
    "CODEC_SPECS",
    "DTYPE_CODES",
    "FORMAT_VERSION",
    "MAGIC",
    "Codec",
    "FrameHeader",
    "decode_frame",
    "frame_header",
    "get_codec",
    "nominal_bytes",
]

CODEC_NAMES: tuple[str, ...] = ("raw", "float16", "int8")
COMPRESSOR_NAMES: tuple[str, ...] = ("zlib", "zstd", "lzma")
#: Every valid spec, uncompressed ones first.
CODEC_SPECS: tuple[str, ...] = CODEC_NAMES + tuple(f"{c}+{z}" for c in CODEC_NAMES for z in COMPRESSOR_NAMES)

MAGIC = b"DSPL"
FORMAT_VERSION = 1
MAX_NDIM = 32

#: Compression levels: each library's default.
ZLIB_LEVEL = 6
ZSTD_LEVEL = 3
LZMA_PRESET = 6

_CODEC_IDS = {name: i for i, name in enumerate(CODEC_NAMES)}
_COMPRESSOR_IDS = {None: 0, **{name: i + 1 for i, name in enumerate(COMPRESSOR_NAMES)}}
_COMPRESSOR_BY_ID = {i: name for name, i in _COMPRESSOR_IDS.items()}

#: Wire dtype code of every supported torch dtype (stable: part of the frame format).
DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float32: 1,
    torch.float64: 2,
    torch.float16: 3,
    torch.bfloat16: 4,
    torch.uint8: 5,
    torch.int8: 6,
    torch.int16: 7,
    torch.int32: 8,
    torch.int64: 9,
    torch.bool: 10,
    torch.complex64: 11,
    torch.complex128: 12,
}
_DTYPE_BY_CODE = {code: dtype for dtype, code in DTYPE_CODES.items()}
_DTYPE_NAMES = {str(dtype).removeprefix("torch."): dtype for dtype in DTYPE_CODES}
_ITEMSIZE = {dtype: torch.empty((), dtype=dtype).element_size() for dtype in DTYPE_CODES}

_PREFIX = struct.Struct("<4sBBBBBBBBI")  # 16 bytes
_U64 = struct.Struct("<Q")
_FLOAT16_MAX = 65504.0
_INT8_LEVELS = 255


def _pad(n_params: int) -> int:
    """Padding (float32 slots) so that the header length is a multiple of 8 bytes."""
    return n_params % 2


def _header_len(ndim: int, n_params: int) -> int:
    """Header length in bytes for ``ndim`` dims and ``n_params`` float32 parameters."""
    return _PREFIX.size + 8 * ndim + 4 * (n_params + _pad(n_params)) + _U64.size


def _as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Resolve ``"float32"``, ``"torch.float32"`` or ``torch.float32`` to a supported torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype in DTYPE_CODES:
            return dtype
        name = str(dtype).removeprefix("torch.")
    else:
        name = str(dtype).strip().removeprefix("torch.")
        if name in _DTYPE_NAMES:
            return _DTYPE_NAMES[name]
    raise DynsplitError(
        f"unsupported dtype '{name}'; expected one of {', '.join(_DTYPE_NAMES)}{did_you_mean(name, _DTYPE_NAMES)}"
    )


def _wire_dtype(codec: str, dtype: torch.dtype) -> tuple[torch.dtype, int]:
    """Payload element dtype and number of float32 parameters for ``codec`` applied to ``dtype``."""
    if dtype.is_floating_point:
        if codec == "float16":
            return torch.float16, 0
        if codec == "int8":
            return torch.uint8, 2
    return dtype, 0


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _corrupt(why: str) -> DynsplitError:
    return DynsplitError(f"corrupt frame: {why}")


def _parse_spec(spec: str) -> tuple[str, str | None]:
    """Split a codec spec into (codec name, compressor name or None), with helpful errors."""
    if not isinstance(spec, str):
        raise DynsplitError(f"codec spec must be a string like 'int8+zstd', got {spec!r}")
    text = spec.strip().lower()
    expected = f"expected one of {', '.join(CODEC_NAMES)}, optionally +{'|+'.join(COMPRESSOR_NAMES)}"
    name, plus, compressor = text.partition("+")
    name, compressor = name.strip(), compressor.strip()
    if name not in CODEC_NAMES:
        hint = did_you_mean(text, CODEC_SPECS) or did_you_mean(name, CODEC_NAMES)
        raise DynsplitError(f"unknown codec '{spec}'; {expected}{hint}")
    if not plus:
        return name, None
    if compressor not in COMPRESSOR_NAMES:
        raise DynsplitError(
            f"unknown compressor '{compressor}' in codec '{spec}'; expected one of "
            f"{', '.join(COMPRESSOR_NAMES)}{did_you_mean(compressor, COMPRESSOR_NAMES)}"
        )
    return name, compressor


@functools.cache
def _zstd():
    """The zstandard module, imported on first use."""
    import zstandard

    return zstandard


def _compress(compressor: str, data: memoryview) -> bytes:
    """Compress ``data`` with ``compressor`` at its default level."""
    if compressor == "zlib":
        return zlib.compress(data, ZLIB_LEVEL)
    if compressor == "zstd":
        return _zstd().ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(data)
    return lzma.compress(data, format=lzma.FORMAT_XZ, preset=LZMA_PRESET)


def _decompress(compressor: str, data: memoryview, expected: int) -> bytes:
    """Decompress ``data`` that must expand to exactly ``expected`` bytes (bounded: no decompression bomb)."""
    zstd_error = _zstd().ZstdError if compressor == "zstd" else zlib.error
    try:
        if compressor == "zlib":
            d = zlib.decompressobj()
            out = d.decompress(data, expected)
            complete = d.eof and not d.unconsumed_tail and not d.unused_data
        elif compressor == "zstd":
            size = _zstd().frame_content_size(data)
            if size != expected:
                raise _corrupt(f"zstd payload declares {size} bytes, the header implies {expected}")
            out = _zstd().ZstdDecompressor().decompress(data, max_output_size=expected)
            complete = True
        else:
            d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            out = d.decompress(data, max_length=expected)
            complete = d.eof and not d.unused_data
    except (zlib.error, lzma.LZMAError, EOFError, zstd_error) as exc:
        raise _corrupt(f"{compressor} payload does not decompress ({exc})") from None
    if len(out) != expected or not complete:
        raise _corrupt(f"{compressor} payload does not expand to the {expected} bytes the header implies")
    return out


def _byte_view(frame: bytes | bytearray | memoryview) -> memoryview:
    """A flat unsigned-byte memoryview of ``frame``."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise TypeError(f"a frame is bytes, bytearray or memoryview, got {type(frame).__name__}")
    mv = memoryview(frame)
    return mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")


@dataclass(frozen=True)
class FrameHeader:
    """The parsed header of a frame.

    Attributes:
        spec: codec spec the frame was encoded with, e.g. ``"int8+zstd"``.
        dtype: dtype of the original tensor (that decoding returns).
        wire_dtype: dtype of the payload elements.
        shape: shape of the tensor.
        params: float32 codec parameters (int8: ``(scale, min)``), else ``()``.
        header_bytes: length of the header in bytes (offset of the payload).
        payload_bytes: length of the payload in bytes, as sent (compressed if a compressor is set).
    """

    spec: str
    dtype: torch.dtype
    wire_dtype: torch.dtype
    shape: tuple[int, ...]
    params: tuple[float, ...]
    header_bytes: int
    payload_bytes: int

    @property
    def frame_bytes(self) -> int:
        """Total frame length in bytes."""
        return self.header_bytes + self.payload_bytes


def frame_header(frame: bytes | bytearray | memoryview) -> FrameHeader:
    """Parse and validate the header of ``frame`` (and its total length); raise DynsplitError if corrupt."""
    return _parse_header(_byte_view(frame))


def _parse_header(mv: memoryview) -> FrameHeader:
    n = len(mv)
    if n < _PREFIX.size:
        if bytes(mv[:4]) != MAGIC[: min(n, 4)]:
            raise _corrupt(f"not a dynsplit frame (got {n} bytes, no magic {MAGIC!r})")
        raise _corrupt(f"truncated header ({n} bytes)")
    magic, version, codec_id, comp_id, dcode, wcode, ndim, n_params, reserved, hlen = _PREFIX.unpack_from(mv)
    if magic != MAGIC:
        raise _corrupt(f"not a dynsplit frame (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise _corrupt(f"format version {version}, this dynsplit reads version {FORMAT_VERSION}")
    if codec_id >= len(CODEC_NAMES):
        raise _corrupt(f"unknown codec id {codec_id}")
    if comp_id not in _COMPRESSOR_BY_ID:
        raise _corrupt(f"unknown compressor id {comp_id}")
    if dcode not in _DTYPE_BY_CODE or wcode not in _DTYPE_BY_CODE:
        raise _corrupt(f"unknown dtype code {dcode if dcode not in _DTYPE_BY_CODE else wcode}")
    if ndim > MAX_NDIM:
        raise _corrupt(f"ndim {ndim} exceeds {MAX_NDIM}")
    if reserved != 0:
        raise _corrupt(f"reserved byte is {reserved}, expected 0")
    codec = CODEC_NAMES[codec_id]
    compressor = _COMPRESSOR_BY_ID[comp_id]
    dtype, wire = _DTYPE_BY_CODE[dcode], _DTYPE_BY_CODE[wcode]
    if (wire, n_params) != _wire_dtype(codec, dtype):
        raise _corrupt(f"codec {codec} cannot carry {dtype} as {wire} with {n_params} parameters")
    if hlen != _header_len(ndim, n_params):
        raise _corrupt(f"header length {hlen} does not match ndim {ndim}")
    if n < hlen:
        raise _corrupt(f"truncated header ({n} of {hlen} bytes)")
    shape = struct.unpack_from(f"<{ndim}Q", mv, _PREFIX.size)
    params = struct.unpack_from(f"<{n_params}f", mv, _PREFIX.size + 8 * ndim)
    (payload_len,) = _U64.unpack_from(mv, hlen - _U64.size)
    if n != hlen + payload_len:
        state = "truncated" if n < hlen + payload_len else "trailing bytes after payload"
        raise _corrupt(f"{state} (frame has {n} bytes, header says {hlen + payload_len})")
    if compressor is None and payload_len != _numel(shape) * _ITEMSIZE[wire]:
        raise _corrupt(f"payload of {payload_len} bytes does not hold shape {list(shape)} of {wire}")
    if n_params and not all(math.isfinite(p) for p in params):
        raise _corrupt(f"non-finite codec parameters {params}")
    spec = codec if compressor is None else f"{codec}+{compressor}"
    return FrameHeader(spec, dtype, wire, tuple(shape), tuple(params), hlen, payload_len)


def decode_frame(frame: bytes | bytearray | memoryview) -> torch.Tensor:
    """Decode any dynsplit frame (whatever its codec) to a contiguous CPU tensor of the original dtype.

    The returned tensor owns its memory (it never aliases ``frame``). Raises DynsplitError if the frame is
    corrupt, truncated or not a dynsplit frame.
    """
    mv = _byte_view(frame)
    return _decode(_parse_header(mv), mv)


def _decode(header: FrameHeader, mv: memoryview) -> torch.Tensor:
    """Decode the payload of a frame whose header has been validated."""
    codec, _, compressor = header.spec.partition("+")
    payload = mv[header.header_bytes :]
    raw_len = _numel(header.shape) * _ITEMSIZE[header.wire_dtype]
    if raw_len == 0:
        return torch.empty(header.shape, dtype=header.dtype)
    if compressor:
        buf = bytearray(_decompress(compressor, payload, raw_len))
    else:
        buf = bytearray(payload)  # the one copy: the result must not alias the caller's frame
    wire = torch.frombuffer(buf, dtype=header.wire_dtype).reshape(header.shape)
    if header.wire_dtype == torch.bool and int(wire.view(torch.uint8).max()) > 1:
        raise _corrupt("bool payload holds bytes other than 0 and 1")
    if header.wire_dtype == header.dtype:
        return wire
    if codec == "float16":
        return wire.to(header.dtype)
    scale, lo = header.params
    work = torch.float64 if header.dtype == torch.float64 else torch.float32
    return wire.to(work).mul_(scale).add_(lo).to(header.dtype)


class Codec:
    """One codec spec (``raw``, ``float16``, ``int8``, each optionally ``+zlib|+zstd|+lzma``).

    Obtain instances with :func:`get_codec`. Attributes: ``spec`` (normalised spec string), ``name``
    (the codec without compressor), ``compressor`` (``None`` or the compressor name), ``lossy`` (whether
    floating tensors are altered).
    """

    def __init__(self, spec: str) -> None:
        name, compressor = _parse_spec(spec)
        self.name: str = name
        self.compressor: str | None = compressor
        self.spec: str = name if compressor is None else f"{name}+{compressor}"
        self.lossy: bool = name != "raw"
        self._codec_id = _CODEC_IDS[name]
        self._comp_id = _COMPRESSOR_IDS[compressor]

    def __repr__(self) -> str:
        return f"Codec({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    # -- sizes -------------------------------------------------------------------------------------------

    def nominal_bytes(self, shape: Sequence[int], dtype: str | torch.dtype) -> int:
        """Frame length in bytes (header + payload) of a tensor of ``shape`` and ``dtype``, without encoding.

        Exact for uncompressed codecs. With a compressor the size depends on the data: raises DynsplitError
        (use :meth:`wire_bytes` on a real tensor).
        """
        if self.compressor is not None:
            raise DynsplitError(
                f"codec '{self.spec}' compresses, so its frame size depends on the data; "
                "use wire_bytes(tensor) on a real tensor"
            )
        dt = _as_dtype(dtype)
        shape = tuple(int(s) for s in shape)
        if len(shape) > MAX_NDIM or any(s < 0 for s in shape):
            raise DynsplitError(f"invalid shape {list(shape)}; expected at most {MAX_NDIM} dims, each >= 0")
        wire, n_params = _wire_dtype(self.name, dt)
        return _header_len(len(shape), n_params) + _numel(shape) * _ITEMSIZE[wire]

    def wire_bytes(self, tensor: torch.Tensor) -> int:
        """Frame length in bytes of ``tensor`` under this codec (no encoding when there is no compressor)."""
        if self.compressor is None:
            return self.nominal_bytes(tuple(tensor.shape), tensor.dtype)
        return len(self.encode(tensor))

    # -- encode / decode ---------------------------------------------------------------------------------

    def encode(self, tensor: torch.Tensor) -> bytes:
        """Encode ``tensor`` (any device; made contiguous and detached) into one self-describing frame.

        Raises DynsplitError for an unsupported dtype, and for NaN/inf under ``int8``.
        """
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"encode expects a torch.Tensor, got {type(tensor).__name__}")
        if tensor.layout != torch.strided or tensor.is_quantized:
            raise TypeError(f"encode expects a dense tensor, got layout {tensor.layout}")
        dtype = _as_dtype(tensor.dtype)
        if tensor.ndim > MAX_NDIM:
            raise DynsplitError(f"tensor has {tensor.ndim} dims; frames hold at most {MAX_NDIM}")
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        wire_dtype, n_params = _wire_dtype(self.name, dtype)
        params: tuple[float, ...] = ()
        if wire_dtype != dtype:
            if self.name == "float16":
                t = _to_float16(t)
            else:
                t, params = _quantize_int8(t)
        t = t.contiguous()
        if t.numel():
            payload = memoryview(t.reshape(-1).view(torch.uint8).numpy())
        else:
            payload = memoryview(b"")
        if self.compressor is not None:
            payload = memoryview(_compress(self.compressor, payload))
        header = _pack_header(self._codec_id, self._comp_id, dtype, wire_dtype, t.shape, params, len(payload))
        return b"".join((header, payload))

    def decode(self, frame: bytes | bytearray | memoryview) -> torch.Tensor:
        """Decode a frame produced by this codec to a contiguous CPU tensor of the original dtype and shape.

        Raises DynsplitError if the frame is corrupt or was encoded with another codec spec
        (:func:`decode_frame` accepts any spec).
        """
        mv = _byte_view(frame)
        header = _parse_header(mv)
        if header.spec != self.spec:
            raise DynsplitError(f"frame was encoded with codec '{header.spec}', not '{self.spec}'")
        return _decode(header, mv)


def _pack_header(
    codec_id: int,
    comp_id: int,
    dtype: torch.dtype,
    wire_dtype: torch.dtype,
    shape: Sequence[int],
    params: Sequence[float],
    payload_len: int,
) -> bytes:
    ndim, n_params = len(shape), len(params)
    hlen = _header_len(ndim, n_params)
    pad = _pad(n_params)
    return struct.pack(
        f"<4sBBBBBBBBI{ndim}Q{n_params + pad}fQ",
        MAGIC,
        FORMAT_VERSION,
        codec_id,
        comp_id,
        DTYPE_CODES[dtype],
        DTYPE_CODES[wire_dtype],
        ndim,
        n_params,
        0,
        hlen,
        *shape,
        *params,
        *([0.0] * pad),
        payload_len,
    )


def _to_float16(t: torch.Tensor) -> torch.Tensor:
    """Cast to float16, saturating finite values beyond +-65504 instead of overflowing to infinity."""
    h = t.to(torch.float16)
    if h.numel() == 0 or t.dtype == torch.float16:
        return h
    lo, hi = torch.aminmax(h)  # one fast pass; NaN or inf in h (rare) takes the slow path
    if math.isfinite(float(lo)) and math.isfinite(float(hi)):
        return h
    return torch.where(torch.isfinite(t), t.clamp(-_FLOAT16_MAX, _FLOAT16_MAX), t).to(torch.float16)


def _quantize_int8(t: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
    """Per-tensor affine quantization to uint8 codes; returns (codes, (scale, min)) with float32 params."""
    if t.numel() == 0:
        return torch.empty(t.shape, dtype=torch.uint8), (1.0, 0.0)
    work = torch.float64 if t.dtype == torch.float64 else torch.float32
    x = t.to(work)
    lo_t, hi_t = torch.aminmax(x)
    lo, hi = float(lo_t), float(hi_t)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = "NaN" if bool(torch.isnan(x).any()) else "infinity"
        raise DynsplitError(f"codec 'int8' cannot quantize a tensor containing {bad}; use 'raw' or 'float16'")
    lo32 = float(np.float32(lo))
    scale = float(np.float32((hi - lo32) / _INT8_LEVELS))
    if scale * _INT8_LEVELS < hi - lo32:  # float32 rounding made the range too short: widen by one ulp
        scale = float(np.nextafter(np.float32(scale), np.float32(np.inf)))
    if not (math.isfinite(lo32) and math.isfinite(scale)):
        raise DynsplitError(
            f"codec 'int8' cannot quantize values in [{lo}, {hi}]: beyond the float32 range of its parameters"
        )
    if scale == 0.0:
        if hi == lo32:  # constant tensor (exactly representable): every code is 0
            return torch.zeros(t.shape, dtype=torch.uint8), (1.0, lo32)
        scale = float(np.nextafter(np.float32(0), np.float32(1)))
    q = x.sub(lo32).div_(scale).round_().clamp_(0, _INT8_LEVELS).to(torch.uint8)
    return q, (scale, lo32)


def get_codec(spec: str) -> Codec:
    """Return the (cached) :class:`Codec` for ``spec``; raise DynsplitError for an unknown spec."""
    if not isinstance(spec, str):
        raise DynsplitError(f"codec spec must be a string like 'int8+zstd', got {spec!r}")
    return _cached_codec(spec)


@functools.cache
def _cached_codec(spec: str) -> Codec:
    codec = Codec(spec)
    return codec if codec.spec == spec else _cached_codec(codec.spec)


def nominal_bytes(spec: str, shape: Sequence[int], dtype: str | torch.dtype) -> int:
    """Frame length in bytes of a ``shape``/``dtype`` tensor under uncompressed codec ``spec``."""
    return get_codec(spec).nominal_bytes(shape, dtype)
