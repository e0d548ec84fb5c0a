"""Drifting cart: a worked example of a system of your own (``reachsafe ... examples/drifting_cart.py``).

A cart on a rail of length 4 m is pushed by a motor whose force fades with speed, slowed
by linear plus cubic drag, shaken by a bounded force disturbance and carried along the
rail by a bounded drift (a conveyor belt / current under the wheels).

State ``x = (p, v)``: position on the rail [m] and velocity [m/s].  Action ``a`` in
[-1, 1]: motor command.  Noise ``w = (w_f, w_d)``: force disturbance per unit mass
[m/s^2] and drift velocity [m/s].

Continuous dynamics (mass-normalised)::

    v_dot = u_max (1 - k_f v^2) a  -  c_1 v  -  c_3 v^3  +  w_f
    p_dot = v + w_d

integrated by semi-implicit Euler with ``dt = 0.05`` s (velocity first, then the
position with the *new* velocity)::

    v+ = v + dt v_dot
    p+ = p + dt (v+ + w_d)

The step is affine in the action and the noise for every fixed state (the motor gain
``u_max (1 - k_f v^2)`` and the drag depend on the state only), which is what reachsafe
needs: the safe-action set of a state is then a polytope, computed exactly.  The dynamics
use only ``+``, ``*`` and integer powers, which the certifier bounds rigorously.

Safety constraint X: ``|p| <= 2`` m, ``|v| <= 1.5`` m/s.  Noise box W:
``|w_f| <= 0.3`` m/s^2, ``|w_d| <= 0.05`` m/s.  Reward: drive the cart to the middle,
``-(p^2 + 0.1 v^2 + 0.01 a^2)``.  Observation: ``(p, v)``.

Everything reachsafe knows about this system comes from ``DEFINITION`` below; keep every
number in ``PARAMS`` (exact decimals) so the certifier sees the exact model.
"""

from __future__ import annotations

from reachsafe.systems.definition import SystemDefinition, exact, symbols

p, v = symbols("p v")  # state: position [m], velocity [m/s]
(a,) = symbols("a")  # action: motor command in [-1, 1]
w_f, w_d = symbols("w_f w_d")  # noise: force disturbance [m/s^2], drift [m/s]
u_max, k_f, c_1, c_3, dt = symbols("u_max k_f c_1 c_3 dt")

PARAMS = {
    u_max: exact("2.0"),  # motor acceleration at rest, |a| = 1 [m/s^2]
    k_f: exact("0.2"),  # motor fade with speed [s^2/m^2]: gain u_max (1 - k_f v^2)
    c_1: exact("0.4"),  # linear drag [1/s]
    c_3: exact("0.3"),  # cubic drag [s/m^2]
    dt: exact("0.05"),  # integration step [s]
}

v_dot = u_max * (1 - k_f * v**2) * a - c_1 * v - c_3 * v**3 + w_f
v_next = v + dt * v_dot
p_next = p + dt * (v_next + w_d)

DEFINITION = SystemDefinition(
    name="drifting_cart",
    description="cart on a rail, speed-dependent motor, cubic drag, bounded force and drift",
    state=(p, v),
    action=(a,),
    noise=(w_f, w_d),
    step=(p_next, v_next),
    params=PARAMS,
    constraint_lo=(-exact(2), -exact("1.5")),
    constraint_hi=(exact(2), exact("1.5")),
    noise_lo=(-exact("0.3"), -exact("0.05")),
    noise_hi=(exact("0.3"), exact("0.05")),
    reward=-(p**2 + exact("0.1") * v**2 + exact("0.01") * a**2),
    observation=(p, v),
    dt=PARAMS[dt],
    units=("m", "m/s"),
    state_names=("p", "v"),
    action_names=("a",),
)
