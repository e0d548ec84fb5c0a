"""TORA, the translational oscillator with a rotational actuator (4-D, a lightly damped oscillation).

Source: the ARCH-COMP AINNCS benchmark "TORA" (Jankovic, Fontaine and Kokotovic, "TORA
example: cascade- and passivity-based control designs", IEEE TCST 4(3), 1996), in the
benchmark's normalised form::

    x1' = x2,   x2' = -x1 + 0.1 sin(x3),   x3' = x4,   x4' = u

with the benchmark's safety box ``|x_i| <= 2`` for every state.  Our choices: explicit Euler
with ``dt = 0.05``, the input ``u = 2 a`` with ``a`` in [-1, 1], and a bounded force
disturbance ``|w| <= 0.01`` on the cart (``x2' = ... + w``).  The cart (x1, x2) is an
undamped oscillator that the rotating arm (x3, x4) can push only through ``0.1 sin(x3)``,
and Euler makes the open loop grow by ``sqrt(1 + dt^2)`` per step: a slowly contracting
closed loop, the case that needs the linear-feedback route's long horizon.

    reachsafe compute-invariant examples/tora.py
"""

import sympy as sp

from reachsafe.systems.definition import SystemDefinition, exact, symbols

x1, x2, x3, x4 = symbols("x1 x2 x3 x4")
(a,) = symbols("a")
(w,) = symbols("w")
dt = exact("0.05")
u = 2 * a

DEFINITION = SystemDefinition(
    name="tora",
    description="ARCH-COMP TORA (translational oscillator with a rotational actuator), Euler dt = 0.05",
    state=(x1, x2, x3, x4),
    action=(a,),
    noise=(w,),
    step=(x1 + dt * x2, x2 + dt * (-x1 + exact("0.1") * sp.sin(x3) + w), x3 + dt * x4, x4 + dt * u),
    params={},
    constraint_lo=(-exact(2),) * 4,
    constraint_hi=(exact(2),) * 4,
    noise_lo=(-exact("0.01"),),
    noise_hi=(exact("0.01"),),
    reward=-(x1**2 + x2**2),
    observation=(x1, x2, x3, x4),
    dt=dt,
    units=("m", "m/s", "rad", "rad/s"),
)
