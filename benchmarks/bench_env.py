"""Environment speed: profiled-env steps per second, the cost of X(b, t0), and the env's share of PPO training.

Prints a table and writes ``benchmarks/results/env.json``. One thread for torch (one core), default env
(bundled mobilenet_v3_large profile, Mahimahi LTE uplink training traces, int8, rate scale 5).

Run: ``.venv/bin/python benchmarks/bench_env.py [--ppo-steps 8192]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import dynsplit
from dynsplit.splitting.profile import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "env.json"


def env_steps_per_second(n_steps: int, repeats: int) -> dict:
    """Random-action steps per second of the raw env and of the env as gymnasium.make returns it."""
    out = {}
    for label, wrapped in (("unwrapped", False), ("gymnasium.make", True)):
        env = gym.make(dynsplit.ENV_ID)
        if not wrapped:
            env = env.unwrapped
        rng = np.random.default_rng(0)
        actions = rng.integers(env.action_space.n, size=n_steps).tolist()
        rates = []
        for r in range(repeats):
            env.reset(seed=r)
            start = time.perf_counter()
            for a in actions:
                _, _, term, trunc, _ = env.step(a)
                if term or trunc:
                    env.reset()
            rates.append(n_steps / (time.perf_counter() - start))
        out[label] = statistics.median(rates)
    return out


def transfer_cost(n_calls: int) -> dict:
    """Seconds per call of the exact transfer time X(b, t0), scalar and for every action at once."""
    env = gym.make(dynsplit.ENV_ID).unwrapped
    env.reset(seed=0)
    trace = max(env.channels, key=lambda c: c.n_segments)
    lm = env.latency_model
    rng = np.random.default_rng(1)
    t0 = rng.uniform(0, trace.duration_s, size=n_calls).tolist()
    nbytes = rng.choice(lm.bytes[:-1], size=n_calls).tolist()
    start = time.perf_counter()
    for b, t in zip(nbytes, t0, strict=True):
        trace.transfer_time_s(b, t)
    scalar = (time.perf_counter() - start) / n_calls
    start = time.perf_counter()
    for t in t0[: n_calls // 10]:
        trace.transfer_times_s(lm.bytes, t + lm.device_s)
    vector = (time.perf_counter() - start) / (n_calls // 10)
    return {"trace": trace.name, "segments": trace.n_segments, "scalar_s": scalar,
            "all_actions_s": vector, "actions": int(lm.n_actions)}


def ppo_share(ppo_steps: int) -> dict:
    """Wall time of PPO.learn with the env inside vs the env alone on the same number of steps."""
    from stable_baselines3 import PPO

    env = gym.make(dynsplit.ENV_ID)
    model = PPO("MlpPolicy", env, n_steps=1024, batch_size=256, n_epochs=4, seed=0, verbose=0, device="cpu")
    start = time.perf_counter()
    model.learn(total_timesteps=ppo_steps)
    train_s = time.perf_counter() - start
    env_rate = env_steps_per_second(ppo_steps, 1)["gymnasium.make"]
    env_s = ppo_steps / env_rate
    return {"timesteps": ppo_steps, "train_s": train_s, "train_steps_per_s": ppo_steps / train_s,
            "env_only_s": env_s, "env_share": env_s / train_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ppo-steps", type=int, default=8192)
    args = parser.parse_args()
    torch.set_num_threads(1)

    steps = env_steps_per_second(args.steps, args.repeats)
    xfer = transfer_cost(20000)
    ppo = ppo_share(args.ppo_steps)
    print(f"{'measure':<44} {'value':>14}  target")
    print(f"{'env steps/s, unwrapped (random actions)':<44} {steps['unwrapped']:>14,.0f}  >= 50,000")
    print(f"{'env steps/s, through gymnasium.make':<44} {steps['gymnasium.make']:>14,.0f}")
    print(f"{'X(b, t0) scalar call (us)':<44} {1e6 * xfer['scalar_s']:>14.2f}  ({xfer['segments']} segments)")
    label = f"X(b, t0) all {xfer['actions']} actions at once (us)"
    print(f"{label:<44} {1e6 * xfer['all_actions_s']:>14.2f}")
    print(f"{'PPO training steps/s (env inside)':<44} {ppo['train_steps_per_s']:>14,.0f}")
    print(f"{'env share of PPO training time':<44} {100 * ppo['env_share']:>13.1f}%  <= 10%")
    write_json_atomic(RESULTS, {"env_steps_per_s": steps, "transfer": xfer, "ppo": ppo,
                                "torch_threads": 1, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
