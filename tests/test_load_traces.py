"""Server load traces: the LoadTrace semantics, CSV loading, bundled and shared files, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dynsplit.envs import bundled, synthetic
from dynsplit.envs.load_traces import LoadTrace, constant_load, load_load, load_load_csv
from dynsplit.splitting.errors import DynsplitError

# the shared trace folder beside the checkout (../shared/traces), as on developer machines and in CI
SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces" / "load"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared trace folder not present")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_load_trace_semantics():
    lt = LoadTrace([10.0, 20.0], [0.2, 0.8], "l", "src")
    assert lt.duration_s == 30.0 and lt.n_segments == 2 and lt.name == "l" and lt.source == "src"
    assert lt.value_at(5.0) == 0.2 and lt.value_at(10.0) == 0.8 and lt.value_at(35.0) == 0.2
    assert lt.value_at(-1.0) == 0.8  # loops backwards too
    assert lt.mean_value == pytest.approx((2 + 16) / 30)
    np.testing.assert_allclose(lt.values_before(15.0, 3, 5.0), [0.2, 0.2, 0.8])  # [0,5] [5,10] [10,15]
    np.testing.assert_allclose(lt.values_before(12.0, 1, 4.0), [0.5])  # [8,12]: half 0.2, half 0.8
    assert lt.mean_between(0.0, 30.0) == pytest.approx(lt.mean_value)
    # only the past: changing the load after t leaves the history alone
    other = LoadTrace([10.0, 5.0, 15.0], [0.2, 0.8, 0.0], "l2")
    np.testing.assert_allclose(other.values_before(15.0, 3, 5.0), lt.values_before(15.0, 3, 5.0))
    ft = LoadTrace.from_times([100.0, 400.0, 700.0], [0.1, 0.2, 0.3], "ft")
    np.testing.assert_allclose(ft.durations_s, [300.0, 300.0, 300.0])
    assert constant_load(0.4).value_at(1e6) == 0.4


@pytest.mark.parametrize("values, match", [
    ([1.2], r"load 1\.2 \(expected a value in \[0, 1\]\)"),
    ([-0.1], "expected a value in"),
    ([float("nan")], "finite"),
    ([], "empty"),
])
def test_invalid_load_traces(values, match):
    with pytest.raises(DynsplitError, match=match):
        LoadTrace([1.0] * len(values), values, "bad-load")


def test_all_zero_load_is_fine():
    assert LoadTrace([1.0], [0.0], "idle").mean_value == 0.0


def test_load_csv_columns_units_and_time(tmp_path):
    f = write(tmp_path / "vm.csv", "time_s,a,b\n0,10,50\n300,20,100\n600,0,25\n")
    trs = load_load_csv(f)
    assert [t.name for t in trs] == ["vm:a", "vm:b"]
    np.testing.assert_allclose(trs[0].values, [0.1, 0.2, 0.0])
    assert trs[0].duration_s == pytest.approx(900.0)
    (b,) = load_load_csv(f, column="b", unit="relative")
    np.testing.assert_allclose(b.values, [0.5, 1.0, 0.25])
    g = write(tmp_path / "frac.csv", "x\n0.5\n0.25\n")
    (x,) = load_load_csv(g, unit="fraction", interval_s=10.0)
    assert x.duration_s == 20.0 and x.value_at(12.0) == 0.25
    h = write(tmp_path / "ts.csv", "timestamp,cpu\n100,1\n200,2\n")
    (c,) = load_load_csv(h, unit="relative")
    np.testing.assert_allclose(c.values, [0.5, 1.0])
    assert c.duration_s == 200.0
    (d,) = load_load_csv(g, unit="fraction", time_column=None, interval_s=1.0)
    assert d.n_segments == 2


@pytest.mark.parametrize("text, kwargs, match", [
    ("time_s,a\n0,10\n300,101\n", {}, r"bad.csv:3: column 'a' has 101 = load 1\.01 .*expected a load in \[0, 1\]"),
    ("time_s,a\n0,10\n300,-3\n", {}, r"bad.csv:3: column 'a' has -3"),
    ("time_s,a\n0,10\n300,nan\n", {}, r"bad.csv:3: column 'a' has 'nan'"),
    ("time_s,a\n0,10\n300,busy\n", {}, r"bad.csv:3: column 'a' has 'busy' \(expected a number\)"),
    ("time_s,a\n0,10\n300\n", {}, r"bad.csv:3: 1 fields \(expected 2"),
    ("time_s,a\n0,10\n0,20\n", {}, r"bad.csv:3: time '0' s"),
    ("a,b\n1,2\n", {}, r"no time column .* and no interval_s"),
    ("time_s,a\n0,10\n300,20\n", {"interval_s": 300.0}, r"has a time column 'time_s'"),
    ("time_s,a\n0,10\n300,20\n", {"column": "aa"}, r"no load column 'aa' \(did you mean 'a'\?\)"),
    ("time_s,a\n0,10\n300,20\n", {"unit": "percnt"}, r"did you mean 'percent'"),
    ("time_s,a\n", {}, r"no data rows"),
    ("", {}, r"empty file"),
    ("a\n0\n0\n", {"unit": "relative", "interval_s": 1.0}, r"maximum 0\.0"),
    ("a\n0.5\n1.5\n", {"unit": "fraction", "interval_s": 1.0}, r"bad.csv:3: column 'a' has 1.5"),
])
def test_load_csv_errors(tmp_path, text, kwargs, match):
    f = write(tmp_path / "bad.csv", text)
    with pytest.raises(DynsplitError, match=match) as e:
        load_load_csv(f, **kwargs)
    assert "\n" not in str(e.value)


def test_load_load_specs(tmp_path):
    (c,) = load_load("0.3")
    assert c.value_at(123.0) == 0.3
    assert load_load(0.7)[0].mean_value == 0.7
    f = write(tmp_path / "l.csv", "time_s,cpu\n0,50\n60,70\n")
    assert load_load(f)[0].value_at(70.0) == 0.7
    assert load_load(str(f), unit="relative")[0].value_at(0.0) == pytest.approx(50 / 70)
    with pytest.raises(DynsplitError, match=r"did you mean 'azure-vm-avg'"):
        load_load("azure-vm-agv")
    with pytest.raises(DynsplitError, match=r"bundled: azure-vm-avg"):
        load_load("nonsense")
    with pytest.raises(DynsplitError, match=r"constant load '1.5'"):
        load_load("1.5")
    with pytest.raises(DynsplitError, match="no such load file"):
        load_load(str(tmp_path / "missing.csv"))


EXPECTED = {"azure-vm-avg": 8, "azure-vm-max": 8, "google2019": 1, "azure-v2": 1}


@pytest.mark.parametrize("name", bundled.load_names())
def test_every_bundled_load_set_loads(name):
    trs = load_load(name)
    assert len(trs) == EXPECTED[name]
    for t in trs:
        assert 0.0 <= t.values.min() <= t.values.max() <= 1.0
        assert t.duration_s >= 7 * 86400 - 300


def test_bundled_load_contents():
    avg, mx = load_load("azure-vm-avg"), load_load("azure-vm-max")
    assert [t.name.split(":")[1] for t in avg] == [t.name.split(":")[1] for t in mx]  # same 8 VMs
    assert all(np.all(a.values <= m.values + 1e-12) for a, m in zip(avg, mx, strict=True))
    assert avg[0].duration_s == pytest.approx(8004 * 300)
    (g,) = load_load("google2019")
    assert g.duration_s == pytest.approx(2016 * 300) and 0.3 < g.mean_value < 0.6
    (v2,) = load_load("azure-v2")
    assert v2.values.max() == 1.0 and v2.duration_s == pytest.approx(8640 * 300)


@needs_shared
def test_shared_load_families_including_alibaba():
    for f in sorted((SHARED / "azure_v1_vm_cpu").glob("*.csv")):
        assert len(load_load_csv(f)) == 8
    agg = SHARED / "datacenter_aggregate"
    ali10 = agg / "alibaba2018/machine_usage_day_1_grouped_10_seconds.csv"
    ali300 = agg / "alibaba2018/machine_usage_days_1_to_8_grouped_300_seconds.csv"
    if ali10.is_file():
        trs = load_load_csv(ali10, interval_s=10.0)  # every column is a percentage
        assert [t.name.split(":")[1] for t in trs] == ["cpu_util_percent", "mem_util_percent", "net_in",
                                                       "net_out", "disk_io_percent"]
        assert trs[0].duration_s == pytest.approx(8641 * 10) and 0.25 < trs[0].mean_value < 0.45
        (cpu,) = load_load_csv(ali300, column="cpu_util_percent", interval_s=300.0)
        assert cpu.n_segments == 2243
        with pytest.raises(DynsplitError, match="no time column"):
            load_load_csv(ali10)
    (g,) = load_load_csv(agg / "google2019/instance_usage_grouped_300_seconds_week1.csv", column="avg_cpu",
                         unit="fraction", interval_s=300.0)
    assert g.n_segments == 2016
    with pytest.raises(DynsplitError, match=r"column 'avg_cycles_per_instruction' has 148"):
        load_load_csv(agg / "google2019/instance_usage_grouped_300_seconds_week1.csv", unit="fraction",
                      interval_s=300.0)
    (v2,) = load_load_csv(agg / "azure_v2/vm_cpu_readings_month_aggregated_cpu_mem.csv", column="cpu_usage",
                          unit="relative")
    assert v2.n_segments == 8640


def test_synthetic_loads_deterministic_per_seed():
    a = synthetic.load_random_walk(0.5, 0.05, 1.0, 300.0, np.random.default_rng(3))
    b = synthetic.load_random_walk(0.5, 0.05, 1.0, 300.0, np.random.default_rng(3))
    c = synthetic.load_random_walk(0.5, 0.05, 1.0, 300.0, np.random.default_rng(4))
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert 0.0 <= a.values.min() and a.values.max() <= 1.0 and a.n_segments == 300
    wild = synthetic.load_random_walk(0.9, 0.5, 1.0, 200.0, np.random.default_rng(0))
    assert wild.values.max() == 1.0  # clipped, never out of range
    assert synthetic.load_constant(0.25).value_at(7.0) == 0.25
    st_ = synthetic.load_steps([0.1, 0.9], 2.0)
    assert st_.value_at(3.0) == 0.9
    with pytest.raises(DynsplitError):
        synthetic.load_steps([0.1, 1.9], 2.0)
    with pytest.raises(DynsplitError):
        synthetic.load_random_walk(1.5, 0.1, 1.0, 10.0, np.random.default_rng(0))
