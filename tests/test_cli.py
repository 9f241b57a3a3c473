"""The command line end to end, in subprocesses: outputs, files and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dynsplit.envs.profiles import bundled_profiles_dir


def dynsplit(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dynsplit.experiments.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2, one line on stderr starting with 'dynsplit: error:', no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dynsplit: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_split_points_json_verify():
    proc = dynsplit("split-points", "resnet18", "--json", "--verify")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "resnet18" and data["input_shape"] == [1, 3, 224, 224]
    assert data["input_elements"] == 3 * 224 * 224
    assert len(data["points"]) == 22 and sum(p["bottleneck"] for p in data["points"]) == 14
    assert data["checked"] == data["exact"] == 22 + 2  # every split point, offload and local
    assert data["candidates"][0] == "offload" and data["candidates"][-1] == "local"
    for key in ("index", "node", "shape", "elements", "bottleneck", "candidate"):
        assert key in data["points"][0]
    kept = [p["node"] for p in data["points"] if p["candidate"]]
    assert kept == data["candidates"][1:-1]


def test_split_points_table_for_user_model():
    proc = dynsplit("split-points", "user_models:make_tiny_net", "--input-shape", "1x3x32x32",
                    cwd=Path(__file__).parent)
    assert proc.returncode == 0, proc.stderr
    assert "split points" in proc.stdout and "candidates: offload" in proc.stdout


def test_profile_writes_a_valid_profile(tmp_path):
    out = tmp_path / "p.json"
    proc = dynsplit("profile", "mobilenet_v3_small", "--input-shape", "1x3x64x64", "--repeats", "1",
                    "--warmup", "0", "--batch-sizes", "1,2", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    from dynsplit.splitting.profile import load_profile

    profile = load_profile(out, model="mobilenet_v3_small")
    assert profile.names[0] == "offload" and profile.names[-1] == "local"
    assert profile.device["slowdown"] == 10.0 and profile.device["threads"] == 1
    assert all(c.device_head_s > 0 for c in profile.candidates[1:])
    assert all(c.server_tail_s[2] > 0 for c in profile.candidates[:-1])
    sizes = [c.bytes["int8"] for c in profile.candidates[1:-1]]
    assert sizes == sorted(sizes, reverse=True)  # compressive_only: every kept bottleneck is smaller
    assert "offload" in proc.stdout  # the table


def test_profile_roles_merge(tmp_path):
    common = ["mobilenet_v3_small", "--input-shape", "1x3x64x64", "--repeats", "1", "--warmup", "0",
              "--batch-sizes", "1", "--codecs", "raw"]
    assert dynsplit("profile", *common, "--role", "device", "-o", str(tmp_path / "d.json")).returncode == 0
    assert dynsplit("profile", *common, "--role", "server", "-o", str(tmp_path / "s.json")).returncode == 0
    proc = dynsplit("profile", "--merge", str(tmp_path / "d.json"), str(tmp_path / "s.json"), "-o",
                    str(tmp_path / "m.json"))
    assert proc.returncode == 0, proc.stderr
    from dynsplit.splitting.profile import load_profile

    merged = load_profile(tmp_path / "m.json")
    assert merged.device["slowdown"] == 1.0  # --role device alone means a real device
    assert merged.candidates[0].server_tail_s[1] > 0 and merged.candidates[-1].device_head_s > 0


def test_traces_lists_and_summarises(tmp_path):
    proc = dynsplit("traces")
    assert proc.returncode == 0 and "mahimahi-lte-up-train" in proc.stdout and "azure-vm-avg" in proc.stdout
    png = tmp_path / "t.png"
    proc = dynsplit("traces", "mahimahi-lte-up-test", "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert "2 traces" in proc.stdout and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("split-points", "resnet19"), ("resnet19", "did you mean")),
        (("split-points", "collections:OrderedDict"), ("collections:OrderedDict",)),
        (("split-points", "resnet18", "--input-shape", "1x3xfoo"), ("1x3xfoo",)),
        (("split-points", "resnet18", "--input-shape", "1x1x224x224"), ("rejects input shape",)),
        (("profile", "resnet18", "--codecs", "int9", "-o", "x.json"), ("int9", "did you mean 'int8'")),
        (("traces", "mahimahi-lte-upp"), ("mahimahi-lte-upp",)),
        (("evaluate", "--policies", "argmn", "-o", "out"), ("argmn", "did you mean 'argmin'")),
        (("evaluate", "--policies", "ppo=missing.zip", "-o", "out"), ("missing.zip",)),
        (("train", "--algo", "ppo", "--hyperparams", "learning_rat:0.1", "-f", "runs"), ("learning_rat",)),
        (("plot", "nowhere"), ("nowhere",)),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path, args, fragments):
    assert_user_error(dynsplit(*args, cwd=tmp_path), *fragments)


def test_corrupt_and_foreign_profiles(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_user_error(dynsplit("evaluate", "--profile", str(bad), "-o", str(tmp_path / "o")), "bad.json")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"hello": 1}))
    assert_user_error(dynsplit("evaluate", "--profile", str(foreign), "-o", str(tmp_path / "o")),
                      "not a dynsplit profile")
    data = json.loads((bundled_profiles_dir() / "mobilenet_v3_large.json").read_text())
    del data["candidates"][1]["bytes"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    assert_user_error(dynsplit("evaluate", "--profile", str(broken), "-o", str(tmp_path / "o")),
                      "broken.json", "bytes")


def test_malformed_trace_names_file_and_line(tmp_path):
    trace = tmp_path / "bad_trace.txt"
    trace.write_text("0.0\t1.5\n1.0\tabc\n")
    assert_user_error(dynsplit("traces", str(trace)), "bad_trace.txt", "2")


def test_evaluate_then_plot_through_the_cli(tmp_path):
    out = tmp_path / "eval"
    proc = dynsplit("evaluate", "--policies", "argmin,oracle,local,offload", "--max-eval-requests", "60",
                    "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "mobilenet_v3_large"
    policies = results["policies"]
    assert set(policies) == {"argmin", "oracle", "local", "offload"}
    for stats in policies.values():
        for key in ("mean_latency_s", "p50_latency_s", "p95_latency_s", "p99_latency_s", "mean_regret_s",
                    "requests", "action_counts", "mean_latency_ci95"):
            assert key in stats
        assert stats["mean_latency_s"] >= policies["oracle"]["mean_latency_s"] - 1e-12
    assert policies["argmin"]["gap_closure"] == 0 and policies["oracle"]["gap_closure"] == 1
    counts = policies["local"]["action_counts"]
    assert counts["local"] == sum(counts.values()) == policies["local"]["requests"]
    header = (out / "requests.csv").read_text().splitlines()[0].split(",")
    for column in ("policy", "trace", "action_name", "latency_s", "oracle_latency_s", "regret_s"):
        assert column in header
    assert (out / "summary.md").read_text().startswith("#")
    for png in ("latency_cdf.png", "split_timeline.png", "mean_latency.png"):
        (out / png).unlink()
    proc = dynsplit("plot", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "latency_cdf.png").read_bytes()[:4] == b"\x89PNG"
    again = dynsplit("evaluate", "--policies", "argmin", "--max-eval-requests", "10", "-o", str(out))
    assert_user_error(again, "--overwrite")
