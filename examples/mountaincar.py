"""gymnasium ``MountainCarContinuous-v0`` physics as a model file (2-D, slow actuation).

Source: gymnasium ``classic_control/continuous_mountain_car.py`` (Moore, 1990): power 0.0015,
``v+ = v + 0.0015 a - 0.0025 cos(3 p)``, ``p+ = p + v+`` (one step per time unit).  gymnasium
clips ``v`` to +-0.07 and ``p`` to [-1.2, 0.6]; the safety box X below is that range, so a set
inside X never meets the clips.  A bounded disturbance ``|w| <= 1e-4`` on the velocity is our
addition.  The action moves the velocity by at most 0.0015 per step, 1 % of its range: the
case that needs margins scaled to the actuation.

    reachsafe compute-invariant examples/mountaincar.py
"""

import sympy as sp

from reachsafe.systems.definition import SystemDefinition, exact, symbols

p, v = symbols("p v")
(a,) = symbols("a")
(w,) = symbols("w")
v_next = v + exact("0.0015") * a - exact("0.0025") * sp.cos(3 * p) + w

DEFINITION = SystemDefinition(
    name="mountaincar",
    description="gymnasium MountainCarContinuous-v0 physics with a bounded velocity disturbance",
    state=(p, v),
    action=(a,),
    noise=(w,),
    step=(p + v_next, v_next),
    params={},
    constraint_lo=(-exact("1.2"), -exact("0.07")),
    constraint_hi=(exact("0.6"), exact("0.07")),
    noise_lo=(-exact("0.0001"),),
    noise_hi=(exact("0.0001"),),
    reward=-((p - exact("0.45")) ** 2),
    observation=(p, v),
    dt=exact(1),
    units=("m", "m/step"),
)
