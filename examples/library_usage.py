"""reachsafe as a library inside a plain torch training loop of your own.

What it shows, in order:

1. load a certified set file (``reachsafe.load_set``; refused if made for another model);
2. wrap the actions of your own policy with ``reachsafe.safeguards.make_safeguard``: every
   executed action lies in the safe-action set ``S(x)``, so the state never leaves the set
   for any noise value, and gradients flow through the safeguard;
3. train the policy by backpropagating the return through the differentiable simulator
   ``system.step`` (short-horizon analytic gradients, like SHAC without a critic);
4. record evaluation rollouts through the rollouts contract (``reachsafe.rollouts.Rollouts``);
5. audit them with the Python API (``verification.audit.audit``): certificate, every state
   in P and X, every action safe, every transition explained by the model and the noise box.

Run from the repository root (defaults: the committed pendulum set)::

    python examples/library_usage.py --out /tmp/lib-run
    python examples/library_usage.py --system examples/drifting_cart.py \
        --set data/drifting_cart.json --out /tmp/lib-cart

Exit code 0 when the audit certifies every recorded step, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from reachsafe import get_system, load_set
from reachsafe.rollouts import Rollouts
from reachsafe.safeguard_kinds import SHIELDING_KIND_NAMES
from reachsafe.safeguards import make_safeguard
from reachsafe.setfile import set_fingerprint

ROOT = Path(__file__).resolve().parents[1]


def sample_in_set(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, k: int,
                  rng: np.random.Generator) -> np.ndarray:
    """``k`` states uniform in ``P = {x : A x <= b}`` by rejection from the box ``[lo, hi]`` (which contains P)."""
    out: list[np.ndarray] = []
    while sum(len(o) for o in out) < k:
        x = rng.uniform(lo, hi, size=(4 * k, len(lo)))
        out.append(x[np.all(x @ A.T <= b, axis=1)])
    return np.concatenate(out)[:k]


class Policy(torch.nn.Module):
    """A small MLP policy ``a = tanh(mlp(o))`` in ``[-1, 1]^m``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(obs_dim, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, act_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


def noise(system, k: int, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """Noise uniform in the box W, ``[k, p]``."""
    lo = torch.as_tensor(system.noise_lo, dtype=dtype)
    hi = torch.as_tensor(system.noise_hi, dtype=dtype)
    return lo + (hi - lo) * torch.rand(k, system.p, generator=gen, dtype=dtype)


def train(system, sg, sf, iterations: int, batch: int, horizon: int, seed: int) -> Policy:
    """Maximise the return of ``horizon`` steps by gradient ascent through ``sg`` and ``system.step``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    policy = Policy(system.observation_dim, system.m)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for it in range(iterations):
        x = torch.as_tensor(sample_in_set(sf.A, sf.b, system.constraint_lo, system.constraint_hi, batch, rng),
                            dtype=torch.float32)
        total = torch.zeros(())
        for _ in range(horizon):
            a = policy(system.observation(x))
            a_safe = sg(x, a)  # provably safe, differentiable
            x = system.step(x, a_safe, noise(system, batch, gen, torch.float32))
            total = total + system.reward(x, a_safe).mean()
        loss = -total / horizon + sg.regularizer(a, a_safe, lam=0.1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        if it % max(1, iterations // 5) == 0 or it == iterations - 1:
            print(f"iteration {it:4d}  mean reward per step {(-loss.item()):.3f}")
    return policy


@torch.no_grad()
def record(system, sg, sf, policy: Policy, episodes: int, steps: int, seed: int, path: Path) -> Path:
    """Run ``episodes`` episodes in float64 and write the rollouts file (format: README, 'File formats')."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(sample_in_set(sf.A, sf.b, system.constraint_lo, system.constraint_hi, episodes, rng),
                        dtype=torch.float64)
    states, actions, policy_actions, rewards = [x], [], [], []
    for _ in range(steps):
        a = policy(system.observation(x).float()).double()
        a_safe = sg(x, a)
        x = system.step(x, a_safe, noise(system, episodes, gen, torch.float64))
        states.append(x)
        actions.append(a_safe)
        policy_actions.append(a)
        rewards.append(system.reward(x, a_safe))
    Rollouts(  # the rollouts contract: shapes checked, written atomically
        states=torch.stack(states, 1).numpy(),  # [E, T+1, n]
        actions=torch.stack(actions, 1).numpy(),  # [E, T, m], executed (after the safeguard)
        policy_actions=torch.stack(policy_actions, 1).numpy(),  # [E, T, m]
        rewards=torch.stack(rewards, 1).numpy(),  # [E, T]
        system=system.name, set_fingerprint=set_fingerprint(sf), model_fingerprint=system.fingerprint,
        noise="uniform",
    ).save(path)
    print(f"recorded {episodes} episodes x {steps} steps, mean return "
          f"{torch.stack(rewards, 1).sum(1).mean().item():.2f} -> {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="pendulum", help="built-in name or model file (default pendulum)")
    ap.add_argument("--set", default=str(ROOT / "data" / "pendulum.json"), help="certified set file")
    ap.add_argument("--out", required=True, help="folder for rollouts.npz and audit.html")
    ap.add_argument("--safeguard", default="raymask", choices=SHIELDING_KIND_NAMES)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    # 1. model and certified set (load_set refuses a set made for another version of the model)
    system = get_system(args.system)
    sf = load_set(args.set, system=args.system)
    print(f"{system.name}: set {args.set}, {sf.A.shape[0]} facets, certified={sf.certified}")
    # 2. the safeguard around the policy's actions
    sg = make_safeguard(args.safeguard, system, sf)
    # 3. your own training loop
    policy = train(system, sg, sf, args.iterations, batch=64, horizon=32, seed=args.seed)
    # 4. rollouts in the documented format
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = record(system, sg, sf, policy, args.episodes, 240, args.seed + 1, out / "rollouts.npz")

    # 5. audit through the Python API (the 'verification' package, imported only here)
    from verification.audit import audit
    from verification.audit.report import write_html

    res = audit(path, sf)
    checks = res.to_json()["checks"]
    print("audit: " + ("CERTIFIED SAFE" if res.ok else "NOT CERTIFIED")
          + f"; certificate {'valid' if checks['certificate']['passed'] else 'INVALID'}; "
          + ", ".join(f"{k} {checks[k]['passed']}/{checks[k]['total']}" for k in ("states", "actions", "transitions")))
    print(f"report {write_html(res, out / 'audit.html')}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
