"""Shield gymnasium's own Pendulum-v1, train SB3 through the shield, and audit the real environment's steps.

What it does, in order (``python examples/shield_gymnasium.py --out DIR``):

1. wraps ``gym.make("Pendulum-v1")`` -- gymnasium's environment, not reachsafe's simulator --
   in :class:`reachsafe.gym.Shield` with the model file ``examples/pendulum_v1.py`` (its
   physics, written from gymnasium's source) and the committed certified set
   ``data/pendulum_v1.json`` (``|theta| <= 0.5`` rad, ``|theta_dot| <= 3`` rad/s);
2. trains stable-baselines3 SAC (or PPO) through the shield, a few thousand steps;
3. records evaluation episodes of the trained policy from the real environment (the shield
   reads ``env.unwrapped.state`` after every step) into ``DIR/rollouts.npz``;
4. audits them: ``reachsafe audit DIR/rollouts.npz --set data/pendulum_v1.json`` (certificate,
   every state in P, every executed action in S(x), every transition of the *real*
   environment explained by the model) -- CERTIFIED SAFE;
5. repeats the recording with a wrong model (``examples/pendulum_v1_heavy.py``: mass 1.25
   instead of 1, with its own certified set) into ``DIR/rollouts-wrong-mass.npz`` and audits
   it against that model: the audit reports the transitions the model does not explain.

Exit code 0 when step 4 certifies and step 5 is caught, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT / "data" / "pendulum_v1.json"
WRONG_SET = ROOT / "data" / "pendulum_v1_heavy.json"


def evaluate(policy, set_file: Path, episodes: int, seed: int, out: Path | None, **shield_kw) -> np.ndarray:
    """Run ``episodes`` shielded episodes of the real Pendulum-v1 (200 steps each); returns their returns.

    ``out``: write the recorded episodes there (rollouts format, for ``reachsafe audit``).
    """
    from reachsafe.gym import Shield

    env = Shield(gym.make("Pendulum-v1"), set_file, record=out is not None, **shield_kw)
    returns = []
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
        obs, _ = env.reset()
    if out is not None:
        env.recorder.save(out)
    return np.array(returns)


def audit_cli(rollouts: Path, set_file: Path) -> int:
    """``reachsafe audit ROLLOUTS --set SETFILE``, in this process; its exit code."""
    from reachsafe.cli import main

    print(f"$ reachsafe audit {rollouts} --set {set_file.relative_to(ROOT)}")
    return main(["audit", str(rollouts), "--set", str(set_file)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for rollouts.npz and rollouts-wrong-mass.npz (created)")
    ap.add_argument("--algo", choices=["sac", "ppo"], default="sac")
    ap.add_argument("--steps", type=int, default=5000, help="training steps (default 5000, about 2 minutes)")
    ap.add_argument("--episodes", type=int, default=10, help="recorded evaluation episodes (200 steps each)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"--out {out}: exists and is not a folder", file=sys.stderr)
        return 2
    if args.steps < 1 or args.episodes < 1:
        print("--steps and --episodes must be >= 1", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)

    import torch
    from stable_baselines3 import PPO, SAC

    from reachsafe.gym import Shield

    torch.set_num_threads(1)
    # 1-2. the user's environment, shielded, and SB3 through it: two extra lines over plain SB3
    env = Shield(gym.make("Pendulum-v1"), SET)
    if args.algo == "sac":
        model = SAC("MlpPolicy", env, learning_starts=200, batch_size=128, policy_kwargs={"net_arch": [64, 64]},
                    seed=args.seed)
    else:
        model = PPO("MlpPolicy", env, n_steps=1024, batch_size=64, seed=args.seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    before = evaluate(policy, SET, 3, args.seed + 1000, None)
    t0 = time.perf_counter()
    model.learn(args.steps)
    print(f"trained {args.algo.upper()} for {args.steps} steps through the shield in {time.perf_counter() - t0:.0f} s; "
          f"return over 3 episodes {before.mean():.1f} before, ", end="")
    zero = evaluate(lambda o: np.zeros(1, np.float32), SET, 3, args.seed + 1000, None)
    after = evaluate(policy, SET, 3, args.seed + 1000, None)
    print(f"{after.mean():.1f} after (zero torque: {zero.mean():.1f})")

    # 3-4. record the real environment and audit it against the model
    path = out / "rollouts.npz"
    returns = evaluate(policy, SET, args.episodes, args.seed + 2000, path)
    print(f"recorded {args.episodes} episodes x 200 steps of gymnasium's Pendulum-v1 (mean return "
          f"{returns.mean():.1f}) -> {path}")
    ok = audit_cli(path, SET) == 0

    # 5. the same with a wrong model: the audit must report transitions it does not explain
    wrong = out / "rollouts-wrong-mass.npz"
    evaluate(policy, WRONG_SET, 2, args.seed + 3000, wrong, outside="fallback")
    print(f"\nthe same policy shielded with a WRONG model (mass 1.25 kg, the environment's is 1 kg) -> {wrong}")
    caught = audit_cli(wrong, WRONG_SET) == 1
    print(f"\ncorrect model: {'CERTIFIED SAFE' if ok else 'NOT CERTIFIED'}; wrong model: "
          f"{'caught by the audit' if caught else 'NOT caught'}")
    return 0 if ok and caught else 1


if __name__ == "__main__":
    sys.exit(main())
