"""Double integrator (2-D): the textbook benchmark of constrained control.

Source: any control text, e.g. Borrelli, Bemporad and Morari, "Predictive Control for Linear
and Hybrid Systems" (2017): position ``p`` [m] and velocity ``v`` [m/s], acceleration ``a``
[m/s^2] in [-1, 1] with a bounded disturbance ``|w| <= 0.1``, explicit Euler with
``dt = 0.1`` s.  X: ``|p| <= 5``, ``|v| <= 2``.  Its maximal RCI set is a polytope, so a
certified set can be compared with the exact answer.

    reachsafe compute-invariant examples/double_integrator.py
"""

from reachsafe.systems.definition import SystemDefinition, exact, symbols

p, v = symbols("p v")
(a,) = symbols("a")
(w,) = symbols("w")
dt = exact("0.1")

DEFINITION = SystemDefinition(
    name="double_integrator",
    description="double integrator with a bounded acceleration disturbance",
    state=(p, v),
    action=(a,),
    noise=(w,),
    step=(p + dt * v, v + dt * (a + w)),
    params={},
    constraint_lo=(-exact(5), -exact(2)),
    constraint_hi=(exact(5), exact(2)),
    noise_lo=(-exact("0.1"),),
    noise_hi=(exact("0.1"),),
    reward=-(p**2),
    observation=(p, v),
    dt=dt,
    units=("m", "m/s"),
)
