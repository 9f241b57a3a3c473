"""Codecs (frames, round trips, error bounds, corruption) and the distortion measurement."""

from __future__ import annotations

import importlib.util
import math
import struct
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynsplit.splitting.codecs import (
    CODEC_NAMES,
    CODEC_SPECS,
    COMPRESSOR_NAMES,
    MAGIC,
    decode_frame,
    frame_header,
    get_codec,
    nominal_bytes,
)
from dynsplit.splitting.distortion import measure_distortion
from dynsplit.splitting.errors import DynsplitError

UNCOMPRESSED = CODEC_NAMES
ALL_DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
    torch.complex64,
]
INTEGER_DTYPES = [torch.uint8, torch.int8, torch.int32, torch.int64, torch.bool]
SHAPES = [(), (0,), (3, 0, 2), (1,), (7,), (2, 3), (1, 4, 5, 6)]


def _sample(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if dtype.is_floating_point or dtype.is_complex:
        return (torch.randn(shape, generator=g, dtype=torch.float64) * 10).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -1000), min(info.max, 1000), shape, generator=g, dtype=dtype)


def _int8_bound(x: torch.Tensor, frame: bytes) -> float:
    scale, _lo = frame_header(frame).params
    # scale/2 plus float32 rounding of the arithmetic (a few ulps of the largest magnitude)
    return scale / 2 + 4 * float(x.abs().max()) * 2.0**-23


# ---------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_raw_round_trip_is_exact(shape, dtype):
    x = _sample(shape, dtype)
    codec = get_codec("raw")
    frame = codec.encode(x)
    y = codec.decode(frame)
    assert y.dtype == dtype and tuple(y.shape) == shape and y.is_contiguous() and y.device.type == "cpu"
    assert torch.equal(y, x)
    assert len(frame) == codec.nominal_bytes(shape, str(dtype).removeprefix("torch.")) == codec.wire_bytes(x)


@pytest.mark.parametrize("spec", CODEC_SPECS)
def test_every_spec_round_trips_with_dtype_and_shape(spec):
    x = _sample((2, 3, 4), torch.float32)
    codec = get_codec(spec)
    frame = codec.encode(x)
    assert frame[:4] == MAGIC  # a dynsplit frame, not a pickle (pickles start with b"\x80")
    y = codec.decode(frame)
    assert y.dtype == torch.float32 and y.shape == x.shape
    if not codec.lossy:
        assert torch.equal(x, y)
    assert codec.wire_bytes(x) == len(frame)
    assert decode_frame(frame).equal(y)


def test_float16_error_bound_and_saturation():
    x = _sample((1000,), torch.float32) * 100
    y = get_codec("float16").decode(get_codec("float16").encode(x))
    assert y.dtype == torch.float32
    # round to nearest: relative error <= 2**-11 for normal float16 values
    assert torch.all((y - x).abs() <= x.abs() * 2.0**-11 + 2.0**-24)
    big = torch.tensor([1e6, -1e6, 65504.0, float("inf"), float("nan")])
    out = get_codec("float16").decode(get_codec("float16").encode(big))
    assert out[:3].tolist() == [65504.0, -65504.0, 65504.0]  # saturated, not inf
    assert math.isinf(out[3]) and math.isnan(out[4])  # genuine inf and nan survive


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_int8_error_at_most_half_a_step(dtype):
    x = (_sample((4, 257), torch.float64) * 3 + 1).to(dtype)
    codec = get_codec("int8")
    frame = codec.encode(x)
    y = codec.decode(frame)
    assert y.dtype == dtype
    scale, lo = frame_header(frame).params
    assert scale == pytest.approx((float(x.max()) - float(x.min())) / 255, rel=1e-6)
    err = (y.double() - x.double()).abs()
    tol = _int8_bound(x.double(), frame) + (float(x.abs().max()) * 2.0**-7 if dtype == torch.bfloat16 else 0)
    tol += float(x.abs().max()) * 2.0**-10 if dtype == torch.float16 else 0
    assert float(err.max()) <= tol
    assert len(frame) == codec.nominal_bytes(x.shape, dtype) == 24 + 16 + 8 + x.numel()


def test_int8_constant_and_empty_tensors():
    codec = get_codec("int8")
    for value in (0.0, -3.25, 1e30):
        x = torch.full((3, 4), value)
        assert torch.equal(codec.decode(codec.encode(x)), x)
    empty = torch.empty(0, 5)
    out = codec.decode(codec.encode(empty))
    assert out.shape == (0, 5) and out.dtype == torch.float32


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_int8_rejects_non_finite(bad):
    x = torch.tensor([1.0, bad, 2.0])
    with pytest.raises(DynsplitError, match="int8.*(NaN|infinity)"):
        get_codec("int8").encode(x)


@pytest.mark.parametrize("spec", CODEC_SPECS)
@pytest.mark.parametrize("dtype", INTEGER_DTYPES, ids=str)
def test_integer_tensors_are_lossless_under_every_codec(spec, dtype):
    x = _sample((2, 3, 8, 8), dtype)
    codec = get_codec(spec)
    frame = codec.encode(x)
    y = codec.decode(frame)
    assert y.dtype == dtype and torch.equal(x, y)
    assert frame_header(frame).wire_dtype == dtype
    if codec.compressor is None:
        assert len(frame) == codec.nominal_bytes(x.shape, dtype)


def test_uint8_image_costs_one_byte_per_element():
    image = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8)
    for spec in UNCOMPRESSED:
        n = get_codec(spec).wire_bytes(image)
        assert 3 * 224 * 224 < n < 3 * 224 * 224 + 64


@pytest.mark.parametrize("compressor", COMPRESSOR_NAMES)
def test_compressors_shrink_compressible_data(compressor):
    x = torch.zeros(64, 1024)
    x[::7] = 1.5
    plain, packed = get_codec("raw"), get_codec(f"raw+{compressor}")
    frame = packed.encode(x)
    assert len(frame) < plain.wire_bytes(x) / 20
    assert torch.equal(packed.decode(frame), x)


def test_non_contiguous_grad_and_decoded_tensors_are_independent():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6).requires_grad_()
    x = base.t()
    assert not x.is_contiguous()
    codec = get_codec("raw")
    frame = bytearray(codec.encode(x))
    y = codec.decode(frame)
    assert torch.equal(y, x.detach()) and y.is_contiguous()
    y += 1  # writable, and it does not alias the frame
    assert torch.equal(codec.decode(frame), x.detach())
    assert torch.equal(codec.decode(memoryview(frame)), x.detach())


# ------------------------------------------------------------------------------------------ property tests

_DTYPES_FOR_PROPERTY = [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool]


@st.composite
def _tensors(draw):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
    dtype = draw(st.sampled_from(_DTYPES_FOR_PROPERTY))
    n = math.prod(shape)
    if dtype == torch.bool:
        values = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    elif dtype.is_floating_point:
        limit = 6e4 if dtype == torch.float16 else 1e6
        values = draw(
            st.lists(
                st.floats(
                    -limit,
                    limit,
                    allow_nan=False,
                    allow_subnormal=False,
                    width=16 if dtype == torch.float16 else 32,
                ),
                min_size=n,
                max_size=n,
            )
        )
    else:
        lo = 0 if dtype == torch.uint8 else -(2**62)
        hi = 255 if dtype == torch.uint8 else 2**62
        values = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    return torch.tensor(values, dtype=dtype).reshape(shape)


@settings(max_examples=150, deadline=None)
@given(x=_tensors(), spec=st.sampled_from(CODEC_SPECS))
def test_property_round_trip(x, spec):
    codec = get_codec(spec)
    frame = codec.encode(x)
    y = codec.decode(frame)
    assert y.dtype == x.dtype and y.shape == x.shape
    if not codec.lossy or not x.dtype.is_floating_point or x.numel() == 0:
        assert torch.equal(x, y)
    elif codec.name == "float16":
        target = x.double().clamp(-65504, 65504)  # finite values beyond the float16 range saturate
        assert torch.all((y.double() - target).abs() <= target.abs() * 2.0**-11 + 2.0**-24)
    else:
        assert float((y.double() - x.double()).abs().max()) <= _int8_bound(x.double(), frame) + (
            float(x.abs().max()) * 2.0**-10 if x.dtype == torch.float16 else 0.0
        )
    if codec.compressor is None:
        assert len(frame) == codec.nominal_bytes(x.shape, x.dtype)


# ------------------------------------------------------------------------------------- corrupt frames


def _frame(spec="raw", x=None):
    return get_codec(spec).encode(torch.arange(12, dtype=torch.float32).reshape(3, 4) if x is None else x)


@pytest.mark.parametrize("spec", ["raw", "int8", "float16+zlib", "int8+zstd", "raw+lzma"])
def test_truncated_and_padded_frames_are_rejected(spec):
    frame = _frame(spec)
    codec = get_codec(spec)
    for cut in sorted({0, 1, 3, 4, 15, 16, 20, len(frame) // 2, len(frame) - 1}):
        with pytest.raises(DynsplitError, match="^corrupt frame: "):
            codec.decode(frame[:cut])
    with pytest.raises(DynsplitError, match="trailing bytes"):
        codec.decode(frame + b"\0")


def _patch(frame: bytes, offset: int, fmt: str, value) -> bytes:
    out = bytearray(frame)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (0, "4s", b"PK\x03\x04", "not a dynsplit frame"),
        (4, "B", 99, "format version 99"),
        (5, "B", 7, "unknown codec id 7"),
        (6, "B", 9, "unknown compressor id 9"),
        (7, "B", 200, "unknown dtype code"),
        (8, "B", 5, "cannot carry"),  # raw float32 claimed as uint8 payload
        (9, "B", 3, "header length"),
        (9, "B", 200, "ndim 200"),
        (11, "B", 1, "reserved"),
        (12, "I", 64, "header length"),
        (16, "Q", 4, "does not hold shape"),  # shape no longer matches the payload length
    ],
)
def test_corrupt_headers_are_rejected(offset, fmt, value, message):
    with pytest.raises(DynsplitError, match=f"^corrupt frame: .*{message}"):
        decode_frame(_patch(_frame(), offset, fmt, value))


def test_foreign_and_garbage_frames_are_rejected():
    import pickle

    for blob in (b"", b"D", b"DSP", pickle.dumps(torch.zeros(3)), bytes(range(256)), b"DSPL" + b"\0" * 40):
        with pytest.raises(DynsplitError, match="^corrupt frame: "):
            decode_frame(blob)
    with pytest.raises(TypeError):
        decode_frame("DSPL")  # type: ignore[arg-type]


@pytest.mark.parametrize("compressor", COMPRESSOR_NAMES)
def test_corrupt_compressed_payload_is_rejected(compressor):
    frame = bytearray(_frame(f"raw+{compressor}", torch.zeros(1000)))
    header = frame_header(frame)
    mid = header.header_bytes + header.payload_bytes // 2
    frame[mid] ^= 0xFF
    frame[mid + 1] ^= 0x55
    with pytest.raises(DynsplitError, match="^corrupt frame: "):
        decode_frame(frame)


@pytest.mark.parametrize("compressor", COMPRESSOR_NAMES)
def test_compressed_frame_claiming_a_huge_shape_is_rejected_without_allocating(compressor):
    frame = _frame(f"raw+{compressor}", torch.zeros(1000))
    with pytest.raises(DynsplitError, match="^corrupt frame: "):
        decode_frame(_patch(frame, 16, "Q", 10**12))  # would need 4 TB: refused, not allocated


def test_bool_payload_other_than_0_and_1_is_rejected():
    bools = bytearray(get_codec("raw").encode(torch.tensor([True, False])))
    bools[-1] = 2
    with pytest.raises(DynsplitError, match="bool payload"):
        decode_frame(bools)


def test_decode_with_another_codec_is_refused():
    frame = _frame("int8+zstd")
    with pytest.raises(DynsplitError, match="encoded with codec 'int8\\+zstd', not 'raw'"):
        get_codec("raw").decode(frame)


# ---------------------------------------------------------------------------------------- specs and sizes


def test_unknown_codec_messages():
    with pytest.raises(DynsplitError) as info:
        get_codec("int9")
    assert str(info.value) == (
        "unknown codec 'int9'; expected one of raw, float16, int8, optionally +zlib|+zstd|+lzma (did you mean 'int8'?)"
    )
    with pytest.raises(
        DynsplitError, match="unknown compressor 'zstdd' in codec 'int8\\+zstdd'.*did you mean 'zstd'"
    ):
        get_codec("int8+zstdd")
    with pytest.raises(DynsplitError, match="unknown codec 'fp16'"):
        get_codec("fp16")
    with pytest.raises(DynsplitError, match="unknown compressor ''"):
        get_codec("raw+")
    with pytest.raises(DynsplitError, match="codec spec must be a string"):
        get_codec(3)  # type: ignore[arg-type]
    with pytest.raises(DynsplitError, match="codec spec must be a string"):
        get_codec(["raw"])  # type: ignore[arg-type]


def test_specs_are_normalised_and_cached():
    assert get_codec(" INT8+Zstd ") is get_codec("int8+zstd")
    codec = get_codec("float16+lzma")
    assert (codec.spec, codec.name, codec.compressor, codec.lossy) == (
        "float16+lzma",
        "float16",
        "lzma",
        True,
    )
    assert get_codec("raw").lossy is False
    assert len(CODEC_SPECS) == 12


def test_nominal_bytes_layout_and_errors():
    # 16-byte prefix + 8 per dim + 8 payload length, + 8 for the int8 parameters
    assert nominal_bytes("raw", (1, 64, 56, 56), "float32") == 24 + 32 + 64 * 56 * 56 * 4
    assert nominal_bytes("float16", (1, 64, 56, 56), "torch.float32") == 24 + 32 + 64 * 56 * 56 * 2
    assert nominal_bytes("int8", (1, 64, 56, 56), torch.float32) == 24 + 32 + 8 + 64 * 56 * 56
    assert nominal_bytes("int8", (1, 3, 224, 224), "uint8") == 24 + 32 + 3 * 224 * 224
    assert nominal_bytes("raw", (), "float64") == 24 + 8
    with pytest.raises(DynsplitError, match="depends on the data"):
        nominal_bytes("int8+zstd", (1, 4), "float32")
    with pytest.raises(DynsplitError, match="unsupported dtype 'float33'.*did you mean 'float32'"):
        nominal_bytes("raw", (1, 4), "float33")
    with pytest.raises(DynsplitError, match="invalid shape"):
        nominal_bytes("raw", (1, -4), "float32")


# --------------------------------------------------------------------------------------------- distortion


class _TinyGraph:
    """A 2-layer CNN split by hand, with the attributes of a SplitGraph that distortion uses."""

    def __init__(self):
        torch.manual_seed(0)
        self.first = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU())
        self.second = torch.nn.Sequential(
            torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(8, 10),
        )  # fmt: skip
        self.graph_module = torch.nn.Sequential(self.first, self.second).eval()
        cand = lambda i, name, kind, shape: SimpleNamespace(  # noqa: E731
            index=i, name=name, kind=kind, node=name, shape=shape, dtype="float32", elements=math.prod(shape)
        )
        self.candidates = [
            cand(0, "offload", "offload", (1, 3, 16, 16)),
            cand(1, "conv1", "split", (1, 4, 8, 8)),
            cand(2, "local", "local", (1, 10)),
        ]

    def head(self, c):
        return {"offload": torch.nn.Identity(), "conv1": self.first, "local": self.graph_module}[c.name]

    def tail(self, c):
        return {"offload": self.graph_module, "conv1": self.second, "local": torch.nn.Identity()}[c.name]


def _images(n=6, shape=(3, 16, 16)):
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_distortion_raw_is_exact_and_lossy_is_measured():
    graph, images = _TinyGraph(), _images()
    rows = measure_distortion(graph, "raw", images)
    assert [r["name"] for r in rows] == ["offload", "conv1"]  # local is skipped
    for r in rows:
        assert (
            r["rel_l2"] == 0.0 and r["rel_l2_max"] == 0.0 and r["top1_agreement"] == 1.0 and r["inputs"] == 6
        )
    assert rows[0]["bytes"] == nominal_bytes("raw", (1, 3, 16, 16), "uint8")
    assert rows[1]["bytes"] == nominal_bytes("raw", (1, 4, 8, 8), "float32")
    lossy = measure_distortion(graph, "int8", images, candidates=["conv1"])
    (row,) = lossy
    assert 0.0 < row["rel_l2"] <= row["rel_l2_max"] < 0.05
    assert 0.0 <= row["top1_agreement"] <= 1.0 and row["bytes_exact"]
    assert row["bytes"] == nominal_bytes("int8", (1, 4, 8, 8), "float32")
    half = measure_distortion(graph, "float16+zstd", images, candidates=[0, 1])
    assert half[0]["rel_l2"] == 0.0 and 0.0 < half[1]["rel_l2"] < 1e-2


def test_distortion_with_float_inputs_and_bad_arguments():
    graph = _TinyGraph()
    x = torch.randn(3, 3, 16, 16)
    rows = measure_distortion(graph, "raw+zlib", x)
    assert rows[0]["kind"] == "offload" and rows[0]["bytes_exact"] is False and rows[1]["rel_l2"] == 0.0
    assert measure_distortion(graph, "int8", x)[0]["bytes_exact"] is True
    with pytest.raises(DynsplitError, match="unknown candidate 'conv2'.*did you mean 'conv1'"):
        measure_distortion(graph, "raw", x, candidates=["conv2"])
    with pytest.raises(DynsplitError, match="index 9 out of range"):
        measure_distortion(graph, "raw", x, candidates=[9])
    with pytest.raises(DynsplitError, match="non-empty batch"):
        measure_distortion(graph, "raw", x[:0])
    with pytest.raises(DynsplitError, match="unknown codec"):
        measure_distortion(graph, "int4", x)


@pytest.mark.skipif(
    importlib.util.find_spec("dynsplit.splitting.graph") is None, reason="graph.py not written yet"
)
def test_distortion_on_real_resnet18_split_graph():
    torchvision = pytest.importorskip("torchvision")
    from dynsplit.splitting.graph import SplitGraph

    torch.manual_seed(0)
    graph = SplitGraph(torchvision.models.resnet18(weights=None), (1, 3, 64, 64))
    images = _images(2, (3, 64, 64))
    splits = [c for c in graph.candidates if c.kind == "split"][:2]
    assert splits, "resnet18 has split candidates"
    exact = measure_distortion(graph, "raw", images, candidates=[c.name for c in splits])
    assert all(r["rel_l2"] == 0.0 and r["top1_agreement"] == 1.0 for r in exact)
    lossy = measure_distortion(graph, "int8", images, candidates=splits)
    assert all(0.0 < r["rel_l2"] < 0.5 for r in lossy)
    assert [r["bytes"] for r in lossy] == [nominal_bytes("int8", c.shape, c.dtype) for c in splits]
