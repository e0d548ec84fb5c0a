"""Inverted pendulum (``pendulum``), as in arXiv:2506.01665 (docs/architecture.md).

State ``x = (theta, omega)``: angle from upright [rad] and angular velocity [rad/s].
Action ``a`` in [-1, 1], torque ``tau = tau_max a`` [N m].  Noise ``w`` [rad/s^2] in
[-0.1, 0.1] is added to the angular acceleration.

Continuous dynamics::

    theta_ddot = (3 g / (2 l)) sin(theta) + (3 / (m l^2)) tau + w

integrated by semi-implicit Euler with ``dt = 0.05`` s (velocity first, then the angle
with the *new* velocity)::

    omega+ = omega + dt theta_ddot
    theta+ = theta + dt omega+

The simulator wraps ``theta`` to (-pi, pi].  Inside the constraint box X
(``|theta| <= 2.7 < pi``) the wrap never triggers for a successor that stays in X, so
the unwrapped map above is exactly the dynamics on every certified set; proofs and
safeguards use the unwrapped map.
"""

from __future__ import annotations

import sympy as sp

from .definition import SystemDefinition, exact, symbols
from .profile import SystemProfile

theta, omega = symbols("theta omega")
(a,) = symbols("a")
(w,) = symbols("w")
g, l, m, tau_max, dt = symbols("g l m tau_max dt")

PARAMS = {
    g: exact("9.81"),  # gravity [m/s^2]
    l: exact(1),  # pole length [m]
    m: exact(1),  # pole mass [kg]
    tau_max: exact(30),  # torque at |a| = 1 [N m]
    dt: exact("0.05"),  # integration step [s]
}

tau = tau_max * a
theta_ddot = 3 * g / (2 * l) * sp.sin(theta) + 3 / (m * l**2) * tau + w
omega_next = omega + dt * theta_ddot
theta_next = theta + dt * omega_next

# the paper's training set-up; SHAC: training.shac.SHACConfig's defaults are the tuned pendulum values
PROFILE = SystemProfile(
    steps=100_000,
    hyperparameters={"ppo": {"num_envs": 8, "gamma": 0.95}, "sac": {"gamma": 0.95}},
    published_set_is_invariant=True,  # data/published/pendulum.json certifies (unlike the quadrotor's)
)

DEFINITION = SystemDefinition(
    name="pendulum",
    description="inverted pendulum, torque-limited, noisy angular acceleration",
    state=(theta, omega),
    action=(a,),
    noise=(w,),
    step=(theta_next, omega_next),
    params=PARAMS,
    constraint_lo=(-exact("2.7"), -exact(12)),
    constraint_hi=(exact("2.7"), exact(12)),
    noise_lo=(-exact("0.1"),),
    noise_hi=(exact("0.1"),),
    reward=-(theta**2 + exact("0.1") * omega**2 + exact("0.001") * a**2),
    observation=(sp.sin(theta), sp.cos(theta), omega),
    wrap={0: (-sp.pi, 2 * sp.pi)},
    dt=PARAMS[dt],
    units=("rad", "rad/s"),
    state_names=("theta", "omega"),
    action_names=("a",),
    profile=PROFILE,
)
