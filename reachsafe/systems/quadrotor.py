"""Planar (longitudinal) quadrotor (``quadrotor``), Mitchell et al. (HSCC 2019) as used in
arXiv:2506.01665; parameters summarised in docs/architecture.md (the benchmark systems).

State ``x = (px, pz, phi, vx, vz, phi_dot)``: positions [m], roll [rad], their rates
[m/s, m/s, rad/s].  Actions ``a = (a1, a2)`` in [-1, 1]^2: mass-normalised thrust
``T = g + (6/7) a1`` [m/s^2] and roll command ``r = (pi/12) a2`` [rad].  Noise
``w = (w1, w2)`` in [-0.1, 0.1]^2 [m/s^2] is added to the horizontal and vertical
accelerations::

    vx_dot   = T sin(phi) + w1
    vz_dot   = T cos(phi) - g + w2
    phi_ddot = k_r r - k_phi phi - k_d phi_dot        (k_r = 55, k_phi = 70, k_d = 17)

Semi-implicit Euler with ``dt = 0.05`` s: velocities first, positions with the new
velocities.  The reward's ``dist`` is the distance of ``(px, pz)`` to the goal
``(gx, gz)``, which is the initial position of the episode.
"""

from __future__ import annotations

import sympy as sp

from .definition import SystemDefinition, exact, symbols
from .profile import SystemProfile

px, pz, phi, vx, vz, phid = symbols("px pz phi vx vz phi_dot")
a1, a2 = symbols("a1 a2")
w1, w2 = symbols("w1 w2")
gx, gz = symbols("gx gz")
g, thrust_gain, roll_max, k_r, k_phi, k_d, dt = symbols("g thrust_gain roll_max k_r k_phi k_d dt")

PARAMS = {
    g: exact("9.81"),  # gravity [m/s^2]
    thrust_gain: sp.Rational(6, 7),  # thrust per unit action [m/s^2]
    roll_max: sp.pi / 12,  # roll command at |a2| = 1 [rad]
    k_r: exact(55),  # roll-command gain [1/s^2]
    k_phi: exact(70),  # roll stiffness [1/s^2]
    k_d: exact(17),  # roll damping [1/s]
    dt: exact("0.05"),  # integration step [s]
}

T = g + thrust_gain * a1
r = roll_max * a2
vx_dot = T * sp.sin(phi) + w1
vz_dot = T * sp.cos(phi) - g + w2
phi_ddot = k_r * r - k_phi * phi - k_d * phid

vx_next = vx + dt * vx_dot
vz_next = vz + dt * vz_dot
phid_next = phid + dt * phi_ddot
px_next = px + dt * vx_next
pz_next = pz + dt * vz_next
phi_next = phi + dt * phid_next

dist = sp.sqrt((px - gx) ** 2 + (pz - gz) ** 2)
tenth = exact("0.1")

# the paper's training set-up: tuned SHAC hyper-parameters, a longer budget, plots of px-vx, pz-vz, vx-phi, phi-phi_dot
PROFILE = SystemProfile(
    steps=200_000,
    hyperparameters={
        "shac": {"num_envs": 16, "horizon": 43, "gamma": 0.9, "lam": 0.93, "polyak": 0.22, "actor_hidden": (128, 128),
                 "actor_lr": 2e-3, "critic_hidden": (120, 120, 120), "critic_lr": 4e-3, "critic_iterations": 24,
                 "grad_clip": 2.0},
        "ppo": {"num_envs": 16, "gamma": 0.98},
        "sac": {"gamma": 0.98},
    },
    plot_pairs=((0, 3), (1, 4), (3, 2), (2, 5)),
)

DEFINITION = SystemDefinition(
    name="quadrotor",
    description="planar quadrotor (longitudinal), thrust and roll command, noisy accelerations",
    state=(px, pz, phi, vx, vz, phid),
    action=(a1, a2),
    noise=(w1, w2),
    step=(px_next, pz_next, phi_next, vx_next, vz_next, phid_next),
    params=PARAMS,
    constraint_lo=(-exact(8), -exact(8), -sp.pi / 12, -exact("0.8"), -exact(1), -sp.pi / 2),
    constraint_hi=(exact(8), exact(8), sp.pi / 12, exact("0.8"), exact(1), sp.pi / 2),
    noise_lo=(-tenth, -tenth),
    noise_hi=(tenth, tenth),
    reward=-(
        exact("2.5") * dist
        + tenth * (phi**2 + vx**2 + vz**2 + phid**2)
        + exact("0.002") * T**2
        + exact("0.001") * r**2
    ),
    observation=(px, pz, phi, vx, vz, phid, gx, gz),
    context=(gx, gz),
    context_from_state=(0, 1),
    dt=PARAMS[dt],
    units=("m", "m", "rad", "m/s", "m/s", "rad/s"),
    state_names=("px", "pz", "phi", "vx", "vz", "phi_dot"),
    action_names=("a1", "a2"),
    profile=PROFILE,
)
