"""Lane keeping with a heading: a Dubins car in path coordinates, steered by curvature rate (3-D).

Source: the kinematic (Dubins) car, ``x' = V cos(psi)``, ``y' = V sin(psi)``, ``psi' = V kappa``
(Dubins, 1957; LaValle, "Planning Algorithms", 2006, sec. 13.1.2), written relative to a
straight lane as in Rajamani, "Vehicle Dynamics and Control" (2012), ch. 3: lateral offset
``e`` [m], heading error ``psi`` [rad] and path curvature ``kappa`` [1/m], at a constant speed
``V = 2`` m/s.  The action commands the curvature rate (``kappa' = 1.0 a`` 1/(m s), a steering
actuator with a bounded rate), and a bounded lateral drift ``|w| <= 0.05`` m/s (side wind,
slip) pushes the car off the lane.  Explicit Euler, ``dt = 0.1`` s::

    e+     = e + dt (V sin(psi) + w)
    psi+   = psi + dt V kappa
    kappa+ = kappa + dt a

X: ``|e| <= 1`` m (the lane), ``|psi| <= 0.5`` rad, ``|kappa| <= 0.5`` 1/m.

    reachsafe compute-invariant examples/lane_keeping.py
"""

import sympy as sp

from reachsafe.systems.definition import SystemDefinition, exact, symbols

e, psi, kappa = symbols("e psi kappa")
(a,) = symbols("a")
(w,) = symbols("w")
V, dt = exact(2), exact("0.1")

DEFINITION = SystemDefinition(
    name="lane_keeping",
    description="Dubins car in lane coordinates, curvature-rate steering, bounded lateral drift",
    state=(e, psi, kappa),
    action=(a,),
    noise=(w,),
    step=(e + dt * (V * sp.sin(psi) + w), psi + dt * V * kappa, kappa + dt * a),
    params={},
    constraint_lo=(-exact(1), -exact("0.5"), -exact("0.5")),
    constraint_hi=(exact(1), exact("0.5"), exact("0.5")),
    noise_lo=(-exact("0.05"),),
    noise_hi=(exact("0.05"),),
    reward=-(e**2 + exact("0.1") * psi**2),
    observation=(e, psi, kappa),
    dt=dt,
    units=("m", "rad", "1/m"),
)
