"""Gymnasium's ``Pendulum-v1``, written as a reachsafe model file (``reachsafe ... examples/pendulum_v1.py``).

Written from gymnasium's source (``gymnasium/envs/classic_control/pendulum.py``, ``PendulumEnv``):
``g = 10``, ``m = 1``, ``l = 1``, ``dt = 0.05``, ``max_torque = 2``, ``max_speed = 8``.

State ``x = (theta, theta_dot)`` exactly as ``env.unwrapped.state`` holds it: the angle from
upright [rad] (not wrapped by the environment) and the angular velocity [rad/s].  Action
``a`` in [-1, 1]; the environment's action is the torque ``u = max_torque a`` [N m]
(``reachsafe.gym.Shield`` maps ``Box(-2, 2)`` to [-1, 1] and back).  Noise ``w`` [rad/s^2]
on the angular acceleration.

The environment's step (semi-implicit Euler: velocity first, then the angle with the *new*
velocity)::

    theta_dot+ = clip(theta_dot + (3 g / (2 l) sin(theta) + 3 / (m l^2) u) dt, -8, 8)
    theta+     = theta + theta_dot+ dt

and this model::

    theta_dot+ = theta_dot + dt (3 g / (2 l) sin(theta) + 3 / (m l^2) u + w)
    theta+     = theta + dt theta_dot+

**The clip.**  The safety box X below bounds ``|theta_dot| <= 3`` rad/s.  The shield keeps
every successor in the certified set P, which lies inside X, so the environment's
``theta_dot+`` never exceeds 3 in magnitude and the clip at 8 never binds: on P the model
above *is* the environment's step, not an approximation of it.  (The audit checks this
claim on every recorded step: a clipped step would not be explained by the model.)

**The noise term, honestly.**  The environment is deterministic, but it does not compute its
step in float64 throughout: the action arrives as a float32 array (the action space's dtype),
``u = np.clip(u, -2, 2)[0]`` is a ``np.float32`` scalar, and under NumPy's promotion rules
``3.0 / (m * l**2) * u`` is then computed in float32, an error of up to ``6 * 2^-24``
(about 3.6e-7 rad/s^2) in the angular acceleration.  The model therefore has a noise term
``|w| <= 1e-3`` rad/s^2 that covers this rounding (more than 2,000 times over) at a negligible
cost in the size of the safe set.  The remaining float64 rounding of the environment's
arithmetic (``np.sin``, the product with ``dt = 0.05``) is what the audit's transition
tolerance is for.  A wrong physical parameter is far outside this bound: a mass off by 25 %
changes the angular acceleration by up to 1.2 rad/s^2
(``examples/pendulum_v1_heavy.py``, caught by the audit).

Safety constraint X: ``|theta| <= 0.5`` rad (stay within about 29 degrees of upright) and
``|theta_dot| <= 3`` rad/s.  Reward: gymnasium's, ``-(theta^2 + 0.1 theta_dot^2 + 0.001 u^2)``
(on P, ``angle_normalize(theta) = theta``).  Observation: gymnasium's ``(cos theta, sin theta,
theta_dot)``.
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
    m: exact(1),  # mass [kg]
    l: exact(1),  # length [m]
    dt: exact("0.05"),  # integration step [s]
    max_torque: exact(2),  # |u| <= 2 N m
}

u = max_torque * a
theta_dot_next = theta_dot + dt * (3 * g / (2 * l) * sp.sin(theta) + 3 / (m * l**2) * u + w)
theta_next = theta + dt * theta_dot_next

DEFINITION = SystemDefinition(
    name="pendulum_v1",
    description="gymnasium Pendulum-v1 (g=10, m=1, l=1, dt=0.05, |u|<=2), kept within 0.5 rad of upright",
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
