"""Kinematic bicycle path tracking (Rajamani, "Vehicle Dynamics and Control", 2012, sec. 2.2;
Polack et al., IV 2017): lateral error e, heading error psi, steering angle delta, speed 5 m/s,
wheelbase 2.5 m, steering-rate input |delta'| <= 0.5 rad/s, lateral disturbance 0.1 m/s.  Euler, dt = 0.05 s.
"""
import sympy as sp
from reachsafe.systems.definition import SystemDefinition, exact, symbols

e, psi, delta = symbols("e psi delta")
(a,) = symbols("a")
(w,) = symbols("w")
v, L, dt = exact(5), exact("2.5"), exact("0.05")
DEFINITION = SystemDefinition(
    name="bicycle", description="kinematic bicycle, path coordinates, steering-rate input",
    state=(e, psi, delta), action=(a,), noise=(w,),
    step=(e + dt * (v * sp.sin(psi) + w), psi + dt * v / L * sp.tan(delta), delta + dt * exact("0.5") * a),
    params={},
    constraint_lo=(-exact("1.5"), -exact("0.4"), -exact("0.3")),
    constraint_hi=(exact("1.5"), exact("0.4"), exact("0.3")),
    noise_lo=(-exact("0.1"),), noise_hi=(exact("0.1"),),
    reward=-(e**2), observation=(e, psi, delta), dt=dt, units=("m", "rad", "rad"),
)

# reachsafe compute-invariant examples/bicycle.py     (README, "The general route on the systems users bring")
