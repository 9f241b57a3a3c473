"""Channel traces: exact transfer times, the controller's history, loaders, bundled data, synthetic processes."""

from __future__ import annotations

import gzip
import hashlib
import math
import subprocess
import sys
import timeit
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dynsplit.envs import bundled, synthetic
from dynsplit.envs.traces import (
    ChannelTrace,
    load_channel,
    load_mahimahi,
    load_pensieve,
    load_rate_csv,
    sniff_channel_format,
    summarize,
)
from dynsplit.splitting.errors import DynsplitError

# the shared trace folder beside the checkout (../shared/traces), as on developer machines and in CI
SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared trace folder not present")


# ============================================================================ brute-force reference
def reference_transfer_time(durations, rates, nbytes, t0) -> Fraction:
    """Step through the trace segment by segment in exact rational arithmetic (slow, obviously right)."""
    d = [Fraction(x) for x in durations]
    r = [Fraction(x) for x in rates]
    left = Fraction(nbytes) * 8
    if left == 0:
        return Fraction(0)
    period = sum(d)
    t = Fraction(t0)
    loops = math.floor(t / period)
    u = t - loops * period
    start, i = Fraction(0), 0
    while start + d[i] <= u:  # segment holding u
        start += d[i]
        i += 1
    elapsed, pos = Fraction(0), u
    while True:
        end = start + d[i]
        cap = r[i] * (end - pos)
        if r[i] > 0 and cap >= left:
            return elapsed + left / r[i]
        left -= cap
        elapsed += end - pos
        i += 1
        if i == len(d):
            i, start = 0, Fraction(0)
        else:
            start = end
        pos = start


@st.composite
def traces(draw, max_segments=8):
    n = draw(st.integers(1, max_segments))
    durations = draw(st.lists(st.floats(0.01, 5.0), min_size=n, max_size=n))
    rates = draw(st.lists(st.one_of(st.just(0.0), st.floats(1e4, 1e7)), min_size=n, max_size=n))
    assume(any(r > 0 for r in rates))
    return durations, rates


def tolerance(trace: ChannelTrace, t0: float, nbytes: float, expected: float) -> float:
    """Absolute slack for float rounding: ~1e-12 of the times and of the bits (over the slowest rate) involved.

    A float result is "exact" when it is within this of the rational answer; otherwise the check is
    1e-9 relative.
    """
    loops = 8 * nbytes / trace.bits_per_period + 2
    slowest = trace.rates_bps[trace.rates_bps > 0].min()
    return 1e-12 * (abs(t0) + expected + trace.duration_s * loops) + 1e-12 * trace.bits_per_period * loops / slowest


@settings(max_examples=300, deadline=None)
# Start times on a 1 us grid: a t0 within ~1e-16 s of a loop boundary (e.g. -1e-90) rounds onto the
# boundary in floating point, where the reference and the trace may legitimately pick different segments.
@given(traces(), st.floats(0.0, 1.0), st.floats(-30.0, 300.0).map(lambda t: round(t, 6)), st.floats(0.0, 6.0))
def test_transfer_time_matches_brute_force(tr, frac, t0, loops):
    durations, rates = tr
    trace = ChannelTrace(durations, rates, "h")
    nbytes = (loops + frac) * trace.bits_per_period / 8  # from nothing up to several whole loops
    got = trace.transfer_time_s(nbytes, t0)
    # tau(bits) jumps where a transfer ends just before an outage (one more bit waits out the outage),
    # so "exact" means: exact for a byte count within 1e-11 of the one asked (float sums of bits round).
    lo = float(reference_transfer_time(durations, rates, Fraction(nbytes) * (1 - Fraction(1, 10**11)), t0))
    hi = float(reference_transfer_time(durations, rates, Fraction(nbytes) * (1 + Fraction(1, 10**11)), t0))
    tol = tolerance(trace, t0, nbytes, hi)
    assert lo - tol - 1e-9 * lo <= got <= hi + tol + 1e-9 * hi
    if hi - lo < 1e-10 * hi:  # well-conditioned: then it is the exact answer to 1e-9 relative
        expected = float(reference_transfer_time(durations, rates, nbytes, t0))
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=tol)


@settings(max_examples=200, deadline=None)
@given(traces(), st.lists(st.floats(0.0, 3e6), min_size=1, max_size=80), st.floats(-30.0, 300.0))
def test_vectorised_equals_scalar(tr, nbytes, t0):
    trace = ChannelTrace(*tr, "v")
    b = np.asarray(nbytes)
    starts = t0 + np.linspace(0.0, 7.3, b.size)
    for vec, t in ((trace.transfer_times_s(b, t0), np.full(b.size, t0)),
                   (trace.transfer_times_s(b, starts), starts),
                   (trace._transfer_times_np(8 * b, starts), starts)):  # the numpy path even for small arrays
        scalar = np.array([trace.transfer_time_s(x, y) for x, y in zip(b, t, strict=True)])
        assert vec.shape == b.shape
        np.testing.assert_allclose(vec, scalar, rtol=1e-12, atol=1e-12 * (abs(t0) + scalar.max() + trace.duration_s))


@settings(max_examples=200, deadline=None)
@given(traces(), st.floats(1.0, 2e6), st.floats(-30.0, 300.0))
def test_bits_between_inverts_transfer_time(tr, nbytes, t0):
    trace = ChannelTrace(*tr, "b")
    tau = trace.transfer_time_s(nbytes, t0)
    assert tau > 0
    bits = trace.bits_between(t0, t0 + tau)
    loops = 8 * nbytes / trace.bits_per_period + 2
    assert math.isclose(bits, 8 * nbytes, rel_tol=1e-9, abs_tol=1e-12 * trace.bits_per_period * loops
                        + trace.rates_bps.max() * 1e-12 * (abs(t0) + tau + trace.duration_s))
    # and it is the smallest such time: a little earlier, fewer bits had gone through -- unless the channel
    # was idle then, which happens when rounding put 8 * nbytes a hair above a whole number of loops
    if tau > 1e-6:
        early = t0 + tau * (1 - 1e-6)
        assert trace.bits_between(t0, early) < 8 * nbytes or trace.bits_between(early, t0 + tau) <= 1e-9 * nbytes


@settings(max_examples=200, deadline=None)
@given(traces(), st.floats(0.0, 0.999), st.integers(1, 10), st.data())
def test_mean_rates_before_uses_only_the_past(tr, pos, k, data):
    durations, rates = tr
    trace = ChannelTrace(durations, rates, "past")
    bin_s = data.draw(st.floats(0.01, 2.0))
    reach = k * bin_s * (1 + 1e-6)
    assume(reach < 0.9 * trace.duration_s)
    t = reach + pos * (trace.duration_s - reach)  # no bin reaches back before time 0, t inside the first loop
    # same trace up to t, anything after it: split the segment holding t, then new rates and lengths
    starts = np.append(trace.starts_s, trace.duration_s)
    i = int(np.searchsorted(starts, t, side="right") - 1)
    new_d = list(durations[:i]) + ([t - starts[i]] if t > starts[i] else [])
    new_r = list(rates[:i]) + ([rates[i]] if t > starts[i] else [])
    tail = data.draw(st.lists(st.tuples(st.floats(0.01, 5.0), st.floats(0.0, 1e8)), min_size=1, max_size=5))
    changed = ChannelTrace(new_d + [d for d, _ in tail] + [1.0], new_r + [r for _, r in tail] + [1e6], "changed")
    before = trace.mean_rates_before(t, k, bin_s)
    assert before.shape == (k,)
    np.testing.assert_allclose(changed.mean_rates_before(t, k, bin_s), before, rtol=1e-9, atol=1e-6)
    # the bins really are the last k, oldest first
    edges = t - bin_s * np.arange(k, -1, -1)
    expected = [trace.bits_between(a, b) / bin_s for a, b in zip(edges[:-1], edges[1:], strict=True)]
    np.testing.assert_allclose(before, expected, rtol=1e-9, atol=1e-6)


def test_mean_rates_before_large_k_matches_small_k_path():
    trace = synthetic.log_random_walk(2e6, 0.3, 0.1, 60.0, np.random.default_rng(1))
    a = trace.mean_rates_before(50.0, 100, 0.25)  # numpy path
    b = np.concatenate([trace.mean_rates_before(50.0 - 0.25 * 50 * j, 50, 0.25) for j in (1, 0)])
    np.testing.assert_allclose(a, b, rtol=1e-9)


# =================================================================================== basic semantics
def test_piecewise_constant_basics():
    tr = ChannelTrace([1.0, 2.0, 1.0], [1e6, 0.0, 3e6], "t", "here")
    assert (tr.name, tr.source, tr.n_segments, len(tr)) == ("t", "here", 3, 3)
    assert tr.duration_s == 4.0
    assert tr.mean_rate_bps == pytest.approx(1e6)
    np.testing.assert_array_equal(tr.starts_s, [0.0, 1.0, 3.0])
    assert tr.rate_at(0.5) == 1e6 and tr.rate_at(1.0) == 0.0 and tr.rate_at(3.5) == 3e6
    assert tr.rate_at(4.5) == 1e6 and tr.rate_at(-0.5) == 3e6  # loops both ways
    assert tr.bits_between(0.0, 8.0) == pytest.approx(8e6)
    assert tr.mean_rate_between(3.0, 5.0) == pytest.approx(2e6)
    with pytest.raises(ValueError):
        tr.rates_bps[0] = 5.0  # read-only
    # through an outage: 1.5 Mbit from t=0.5 -> 0.5 Mbit in [0.5, 1], outage [1, 3], 1 Mbit at 3 Mbit/s
    assert tr.transfer_time_s(1.5e6 / 8, 0.5) == pytest.approx(0.5 + 2.0 + 1 / 3)
    assert tr.transfer_time_s(0, 123.0) == 0.0
    assert tr.transfer_time_s(1e6 / 8, 1.0) == pytest.approx(2.0 + 1 / 3)  # start of the outage: wait 2 s, then 1/3 s
    # exactly one loop's bits, starting at 0, ends where the last positive segment ends (4 s)
    assert tr.transfer_time_s(tr.bits_per_period / 8, 0.0) == pytest.approx(4.0)
    np.testing.assert_allclose(tr.transfer_times_s([0.0, 1.5e6 / 8], 0.5), [0.0, 0.5 + 2.0 + 1 / 3])
    with pytest.raises(DynsplitError, match="bytes"):
        tr.transfer_time_s(-1.0, 0.0)
    with pytest.raises(DynsplitError, match="bytes"):
        tr.transfer_times_s(np.array([1.0, np.nan] * 40), 0.0)


def test_from_times_and_scaled():
    tr = ChannelTrace.from_times([10.0, 11.0, 13.0], [1.0, 2.0, 3.0], "ft")
    np.testing.assert_array_equal(tr.durations_s, [1.0, 2.0, 1.5])  # last one: the median step
    s = tr.scaled(2.5)
    np.testing.assert_allclose(s.rates_bps, [2.5, 5.0, 7.5])
    assert s.name == tr.name
    with pytest.raises(DynsplitError, match="rate scale"):
        tr.scaled(0.0)
    with pytest.raises(DynsplitError, match="not after"):
        ChannelTrace.from_times([0.0, 1.0, 1.0], [1.0, 1.0, 1.0], "dup")


@pytest.mark.parametrize("durations, rates, match", [
    ([], [], "empty"),
    ([1.0], [-5.0], "negative rate"),
    ([1.0, 1.0], [1.0, float("nan")], "finite"),
    ([1.0], [float("inf")], "finite"),
    ([1.0, 2.0], [0.0, 0.0], "every rate is zero"),
    ([1.0, 0.0], [1.0, 1.0], "duration"),
    ([1.0, 2.0], [1.0], "durations but"),
])
def test_invalid_traces(durations, rates, match):
    with pytest.raises(DynsplitError, match=match) as e:
        ChannelTrace(durations, rates, "bad-trace")
    assert "bad-trace" in str(e.value) and "\n" not in str(e.value)


# =========================================================================================== loaders
def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_load_pensieve(tmp_path):
    f = write(tmp_path / "p", "3.0\t1.5\n4.0 2.0\n6.0\t0.5\n\n")
    tr = load_pensieve(f)
    np.testing.assert_allclose(tr.starts_s, [0.0, 1.0, 3.0])
    np.testing.assert_allclose(tr.rates_bps, [1.5e6, 2e6, 0.5e6])
    assert tr.duration_s == pytest.approx(4.5)  # 3 s span + median step 1.5 s
    assert tr.name == "p" and tr.source == str(f)
    assert sniff_channel_format(f) == "pensieve"


@pytest.mark.parametrize("text, match", [
    ("0.0\t1.0\n1.0\tabc\n", r"p:2: .*two numbers"),
    ("0.0\t1.0\n1.0\t2.0\t3.0\n", r"p:2: .*two numbers"),
    ("0.0\t1.0\n1.0\t-2.0\n", r"p:2: negative"),
    ("0.0\t1.0\n1.0\tnan\n", r"p:2: .*finite"),
    ("0.0\t1.0\n2.0\t1.0\n2.0\t1.0\n", r"p:3: time 2.0 s is not after"),
    ("", r"p: empty"),
    ("\n\n", r"p: empty"),
    ("0.0\t1.0\n", r"one sample"),
    ("0.0\t0.0\n1.0\t0.0\n", r"every rate is zero"),
])
def test_load_pensieve_errors(tmp_path, text, match):
    f = write(tmp_path / "p", text)
    with pytest.raises(DynsplitError, match=match) as e:
        load_pensieve(f)
    assert "\n" not in str(e.value)


def test_load_mahimahi(tmp_path):
    # period 300 ms: the line at 300 ms is time 0 of the next loop; 100 ms bins
    f = write(tmp_path / "m.up", "0\n0\n50\n120\n250\n300\n")
    tr = load_mahimahi(f, bin_s=0.1)
    assert tr.duration_s == pytest.approx(0.3) and tr.n_segments == 3
    np.testing.assert_allclose(tr.rates_bps * 0.1 / 12000, [4, 1, 1])  # packets per bin
    assert tr.bits_per_period == 6 * 12000  # mean = lines * 1500 B * 8 / last_ms
    assert sniff_channel_format(f) == "mahimahi"
    # a period that is not a whole number of bins: the last bin is shorter
    g = write(tmp_path / "m2", "10\n20\n110\n130\n")  # 130 ms is the period: its packet counts at 0
    tr2 = load_mahimahi(g, bin_s=0.1)
    np.testing.assert_allclose(tr2.durations_s, [0.1, 0.03])
    np.testing.assert_allclose(tr2.rates_bps, [3 * 12000 / 0.1, 12000 / 0.03])
    # gzip
    h = tmp_path / "m3.gz"
    h.write_bytes(gzip.compress(b"0\n0\n50\n120\n250\n300\n"))
    tr3 = load_mahimahi(h)
    assert tr3.name == "m3" and tr3.bits_per_period == tr.bits_per_period
    assert sniff_channel_format(h) == "mahimahi"


@pytest.mark.parametrize("text, match", [
    ("0\n5\nx7\n9\n", r"m:3: 'x7'.*one integer"),
    ("0\n5\n\n7 8\n", r"m:4: '7 8'"),
    ("0\n5\n3\n9\n", r"m:3: timestamp 3 ms is before"),
    ("0\n-5\n", r"m:2: negative"),
    ("", r"m: empty"),
    ("0\n0\n", r"last timestamp is 0 ms"),
])
def test_load_mahimahi_errors(tmp_path, text, match):
    f = write(tmp_path / "m", text)
    with pytest.raises(DynsplitError, match=match):
        load_mahimahi(f)


def test_load_rate_csv(tmp_path):
    f = write(tmp_path / "r.csv", "t,rate_kbps,other\n0,1000,x\n2,500,y\n4,250,z\n")
    tr = load_rate_csv(f, "rate_kbps", "kbps", time_column="t")
    np.testing.assert_allclose(tr.rates_bps, [1e6, 5e5, 2.5e5])
    assert tr.duration_s == pytest.approx(6.0)
    tr2 = load_rate_csv(f, "rate_kbps", "Mbps", interval_s=0.5)
    assert tr2.duration_s == pytest.approx(1.5) and tr2.rates_bps[0] == 1e9
    with pytest.raises(DynsplitError, match="exactly one"):
        load_rate_csv(f, "rate_kbps", "kbps")
    with pytest.raises(DynsplitError, match="did you mean 'rate_kbps'"):
        load_rate_csv(f, "rate_kbp", "kbps", interval_s=1.0)
    with pytest.raises(DynsplitError, match="did you mean 'bps'"):
        load_rate_csv(f, "rate_kbps", "Kbps", interval_s=1.0)
    g = write(tmp_path / "bad.csv", "t,rate\n0,1\n1,oops\n")
    with pytest.raises(DynsplitError, match=r"bad.csv:3: column 'rate' has 'oops'"):
        load_rate_csv(g, "rate", "bps", time_column="t")
    h = write(tmp_path / "neg.csv", "rate\n1\n-1\n")
    with pytest.raises(DynsplitError, match=r"neg.csv:3: .*negative"):
        load_rate_csv(h, "rate", "bps", interval_s=1.0)


def test_load_channel_file_folder_and_errors(tmp_path):
    write(tmp_path / "a", "0\t1\n1\t2\n")
    write(tmp_path / "b.up", "0\n10\n100\n")
    write(tmp_path / "README.md", "not a trace")
    write(tmp_path / "LICENSE", "not a trace")
    write(tmp_path / ".hidden", "not a trace")
    (tmp_path / "sub").mkdir()
    trs = load_channel(tmp_path, rate_scale=2.0)
    assert [t.name for t in trs] == ["a", "b.up"]
    assert trs[0].rates_bps[0] == 2e6
    assert load_channel(tmp_path / "a")[0].rates_bps[0] == 1e6
    hdr = write(tmp_path / "h.csv", "time,rate\n0,1\n")
    with pytest.raises(DynsplitError, match=r"h.csv:1: looks like a header row.*load_rate_csv"):
        load_channel(hdr)
    with pytest.raises(DynsplitError, match=r"did you mean 'pensieve-test'"):
        load_channel("pensieve-tset")
    with pytest.raises(DynsplitError, match=r"bundled: pensieve-train"):
        load_channel("nonsense")
    with pytest.raises(DynsplitError, match="no such trace file"):
        load_channel(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DynsplitError, match="no trace files"):
        load_channel(tmp_path / "empty")
    with pytest.raises(DynsplitError, match="rate_scale"):
        load_channel(tmp_path / "a", rate_scale=-1)


def test_summarize():
    a = ChannelTrace([1.0, 1.0], [1e6, 3e6], "a")
    b = ChannelTrace([2.5], [2e6], "b")
    s = summarize([a, b])
    assert s["files"] == 2 and s["duration_s"] == pytest.approx(4.5)
    assert s["mean_bps"] == pytest.approx((4e6 + 5e6) / 4.5)
    assert s["min_bps"] == 1e6 and s["max_bps"] == 3e6
    assert s["median_bps"] == 2e6  # 1 s at 1e6, 1 s at 3e6, 2.5 s at 2e6
    assert [r["name"] for r in s["traces"]] == ["a", "b"]


# ============================================================================== real and bundled data
@needs_shared
@pytest.mark.parametrize("folder, count", [
    ("channel/pensieve_cooked/train", 127),
    ("channel/pensieve_cooked/test", 142),
    ("channel/mahimahi_lte", 9),
])
def test_shared_channel_families_load(folder, count):
    trs = load_channel(SHARED / folder)
    assert len(trs) == count
    for t in trs:
        assert t.duration_s > 30 and t.mean_rate_bps > 0
    s = summarize(trs)
    assert 1e5 < s["mean_bps"] < 2e7


@needs_shared
def test_mahimahi_mean_matches_line_count():
    f = SHARED / "channel/mahimahi_lte/Verizon-LTE-short.up.gz"
    ms = np.loadtxt(f, dtype=np.int64)
    tr = load_mahimahi(f)
    assert tr.duration_s == pytest.approx(ms[-1] / 1000)
    assert tr.mean_rate_bps == pytest.approx(ms.size * 12000 / (ms[-1] / 1000))


EXPECTED_COUNTS = {"pensieve-train": 127, "pensieve-test": 142, "pensieve-fcc": 59, "pensieve-norway": 68,
                   "mahimahi-lte": 9, "mahimahi-lte-up": 4, "mahimahi-lte-down": 5,
                   "mahimahi-lte-up-train": 2, "mahimahi-lte-up-test": 2}


@pytest.mark.parametrize("name", bundled.channel_names())
def test_every_bundled_channel_set_loads(name):
    trs = load_channel(name)
    assert len(trs) == len(bundled.channel_files(name)) == EXPECTED_COUNTS[name]
    assert all(t.mean_rate_bps > 0 for t in trs)


def test_bundled_registry():
    assert set(bundled.channel_names()) == set(EXPECTED_COUNTS)
    up = {p.name for p in bundled.channel_files("mahimahi-lte-up")}
    train = {p.name for p in bundled.channel_files("mahimahi-lte-up-train")}
    test = {p.name for p in bundled.channel_files("mahimahi-lte-up-test")}
    assert train | test == up and not train & test
    fcc = set(bundled.channel_files("pensieve-fcc"))
    norway = set(bundled.channel_files("pensieve-norway"))
    assert fcc | norway == set(bundled.channel_files("pensieve-train")) and not fcc & norway
    rows = bundled.describe_bundled()
    assert {r["name"] for r in rows} == set(bundled.channel_names()) | set(bundled.load_names())
    assert all(r["licence"] and r["description"] and r["files"] >= 1 for r in rows)
    data = bundled.data_dir()
    for f in ("ATTRIBUTION.md", "channel/pensieve/LICENSE", "channel/mahimahi_lte/COPYING"):
        assert (data / f).is_file()
    assert not list(data.rglob("*alibaba*")), "Alibaba data must not be shipped"
    with pytest.raises(DynsplitError, match="did you mean 'mahimahi-lte-up'"):
        bundled.channel_files("mahimahi-lte-upp")


@needs_shared
def test_bundled_copies_match_shared_checksums():
    sums = {}
    for line in (SHARED / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        sums[rel.strip().lstrip("*")] = digest
    mapping = {"channel/pensieve/": "channel/pensieve_cooked/", "channel/mahimahi_lte/": "channel/mahimahi_lte/",
               "load/azure_v1_vm_cpu/": "load/azure_v1_vm_cpu/", "load/google2019/": "load/datacenter_aggregate/google2019/",
               "load/azure_v2/": "load/datacenter_aggregate/azure_v2/"}
    data = bundled.data_dir()
    checked = 0
    for f in sorted(data.rglob("*")):
        rel = f.relative_to(data).as_posix()
        prefix = next((p for p in mapping if rel.startswith(p)), None)
        if prefix is None or not f.is_file() or f.name in ("LICENSE", "COPYING"):
            continue
        shared_rel = mapping[prefix] + rel[len(prefix):]
        assert hashlib.sha256(f.read_bytes()).hexdigest() == sums[shared_rel], rel
        checked += 1
    assert checked == 269 + 9 + 2 + 1 + 1


# ========================================================================================= synthetic
def test_synthetic_channels_deterministic_per_seed():
    def make(seed):
        rng = np.random.default_rng(seed)
        return (synthetic.gilbert_elliott(5e6, 2e5, 0.1, 0.3, 0.1, 60.0, rng),
                synthetic.log_random_walk(2e6, 0.2, 0.1, 60.0, rng, min_bps=1e4, max_bps=5e7))
    a, b, c = make(7), make(7), make(8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.rates_bps, y.rates_bps)
        np.testing.assert_array_equal(x.durations_s, y.durations_s)
    assert not np.array_equal(a[1].rates_bps, c[1].rates_bps)
    ge, walk = a
    assert set(np.unique(ge.rates_bps)) <= {5e6, 2e5}
    assert ge.duration_s == pytest.approx(60.0)
    assert walk.rates_bps.min() >= 1e4 and walk.rates_bps.max() <= 5e7 and walk.n_segments == 600


def test_synthetic_statistics_and_simple_processes():
    rng = np.random.default_rng(0)
    ge = synthetic.gilbert_elliott(1.0e6, 0.0, 0.05, 0.2, 0.01, 2000.0, rng)
    assert (ge.rates_bps > 0).mean() > 0.5  # stationary share of "good": 0.2 / 0.25 = 0.8 of the time
    assert ge.mean_rate_bps == pytest.approx(0.8e6, rel=0.1)
    walk = synthetic.log_random_walk(3e6, 0.1, 0.1, 5000.0, np.random.default_rng(1))
    assert walk.mean_rate_bps == pytest.approx(3e6, rel=0.1)
    assert synthetic.constant(2e6, 5.0).transfer_time_s(1e6, 3.0) == pytest.approx(4.0)
    st_ = synthetic.steps([1e6, 2e6], 0.5)
    assert st_.rate_at(0.7) == 2e6 and st_.duration_s == 1.0
    with pytest.raises(DynsplitError):
        synthetic.gilbert_elliott(1e6, 0.0, 0.0, 0.2, 0.01, 1.0, rng)
    with pytest.raises(DynsplitError):
        synthetic.constant(0.0)


# ============================================================================================ misc
def test_trace_modules_do_not_import_torch():
    code = ("import sys; import dynsplit.envs.traces, dynsplit.envs.load_traces, dynsplit.envs.synthetic, "
            "dynsplit.envs.bundled; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plot_channel(tmp_path):
    pytest.importorskip("matplotlib")
    from dynsplit.experiments.trace_plots import plot_channel

    trs = [synthetic.steps([1e6, 3e6, 0.0], 1.0), synthetic.constant(2e6, 4.0)]
    out = plot_channel(trs, tmp_path / "figs" / "channel.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["channel.png"]  # no temporary file left behind


def test_transfer_time_cost(capsys):
    tr = load_channel("mahimahi-lte-up")[1]  # ATT-LTE-driving.up: 10k segments
    n = 20000
    scalar = min(timeit.repeat(lambda: tr.transfer_time_s(2e5, 500.7), number=n, repeat=3)) / n
    b = np.geomspace(1e3, 1e6, 12)
    vec = min(timeit.repeat(lambda: tr.transfer_times_s(b, 500.7), number=2000, repeat=3)) / 2000
    big = np.geomspace(1e3, 1e6, 1000)
    vec_big = min(timeit.repeat(lambda: tr.transfer_times_s(big, 500.7), number=200, repeat=3)) / 200
    hist = min(timeit.repeat(lambda: tr.mean_rates_before(500.7, 8, 1.0), number=n, repeat=3)) / n
    with capsys.disabled():
        print(f"\n[trace cost] transfer_time_s {scalar * 1e6:.2f} us; transfer_times_s x12 {vec * 1e6:.1f} us, "
              f"x1000 {vec_big * 1e6:.1f} us; mean_rates_before(k=8) {hist * 1e6:.1f} us")
