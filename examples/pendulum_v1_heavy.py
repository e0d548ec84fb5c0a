"""A deliberately WRONG model of gymnasium's ``Pendulum-v1``: the mass is 1.25 kg instead of 1 kg.

Everything else is ``examples/pendulum_v1.py`` (read that file for the model and its
derivation).  The mass enters only the torque term ``3 / (m l^2) u`` of the angular
acceleration, so this model believes the motor is 20 % weaker than it is.  A shield built on
it still keeps the real environment safe in practice (it underestimates its own authority),
but the environment's transitions are not the model's: ``examples/shield_gymnasium.py``
records them and ``reachsafe audit`` reports every step with a torque above about 2e-3 N m as
"not explained by the model".  This is what an audit catches that a safety monitor on the
states alone cannot: the proof rests on a model, and the model is wrong.
"""

from __future__ import annotations

import sympy as sp

from reachsafe.systems.definition import SystemDefinition, exact, symbols

theta, theta_dot = symbols("theta theta_dot")  # state: angle from upright [rad], angular velocity [rad/s]
(a,) = symbols("a")  # action in [-1, 1]; torque u = max_torque a [N m]
(w,) = symbols("w")  # noise: angular acceleration [rad/s^2]
g, m, l, dt, max_torque = symbols("g m l dt max_torque")

PARAMS = {
    g: exact(10),  # gravity [m/s^2], PendulumEnv(g=10.0)
    m: exact("1.25"),  # mass [kg] -- WRONG on purpose: the environment has m = 1
    l: exact(1),  # length [m]
    dt: exact("0.05"),  # integration step [s]
    max_torque: exact(2),  # |u| <= 2 N m
}

u = max_torque * a
theta_dot_next = theta_dot + dt * (3 * g / (2 * l) * sp.sin(theta) + 3 / (m * l**2) * u + w)
theta_next = theta + dt * theta_dot_next

DEFINITION = SystemDefinition(
    name="pendulum_v1_heavy",
    description=("WRONG model of gymnasium Pendulum-v1 (g=10, m=1.25 instead of 1, l=1, dt=0.05, |u|<=2), "
                 "kept within 0.5 rad of upright"),
    state=(theta, theta_dot),
    action=(a,),
    noise=(w,),
    step=(theta_next, theta_dot_next),
    params=PARAMS,
    constraint_lo=(-exact("0.5"), -exact(3)),
    constraint_hi=(exact("0.5"), exact(3)),
    noise_lo=(-exact("0.001"),),
    noise_hi=(exact("0.001"),),
    reward=-(theta**2 + exact("0.1") * theta_dot**2 + exact("0.001") * u**2),
    observation=(sp.cos(theta), sp.sin(theta), theta_dot),
    dt=PARAMS[dt],
    units=("rad", "rad/s"),
    state_names=("theta", "theta_dot"),
    action_names=("a",),
)
