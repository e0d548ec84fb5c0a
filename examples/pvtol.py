"""Planar vectored-thrust aircraft (Astrom and Murray, "Feedback Systems", 2nd ed., Example 3.12 / 2.9).

m x'' = F1 cos(th) - F2 sin(th) - c x',  m y'' = F1 sin(th) + F2 cos(th) - m g - c y',  J th'' = r F1.
m = 4 kg, J = 0.0475 kg m^2, r = 0.25 m, c = 0.05 N s/m, g = 9.8.  F1 = 2 a1 N, F2 = m g + 10 a2 N.
Euler, dt = 0.02 s; wind forces on both translational axes.
"""
import sympy as sp
from reachsafe.systems.definition import SystemDefinition, exact, symbols

x, y, th, xd, yd, thd = symbols("x y theta x_dot y_dot theta_dot")
a1, a2 = symbols("a1 a2")
w1, w2 = symbols("w1 w2")
m, J, r, c, g, dt = exact(4), exact("0.0475"), exact("0.25"), exact("0.05"), exact("9.8"), exact("0.02")
F1, F2 = 2 * a1, m * g + 10 * a2
xdd = (F1 * sp.cos(th) - F2 * sp.sin(th) - c * xd + w1) / m
ydd = (F1 * sp.sin(th) + F2 * sp.cos(th) - m * g - c * yd + w2) / m
thdd = r * F1 / J
DEFINITION = SystemDefinition(
    name="pvtol", description="planar vectored-thrust aircraft (Astrom & Murray)",
    state=(x, y, th, xd, yd, thd), action=(a1, a2), noise=(w1, w2),
    step=(x + dt * xd, y + dt * yd, th + dt * thd, xd + dt * xdd, yd + dt * ydd, thd + dt * thdd),
    params={},
    constraint_lo=(-exact(1), -exact(1), -exact("0.3"), -exact(1), -exact(1), -exact(2)),
    constraint_hi=(exact(1), exact(1), exact("0.3"), exact(1), exact(1), exact(2)),
    noise_lo=(-exact("0.2"), -exact("0.2")), noise_hi=(exact("0.2"), exact("0.2")),
    reward=-(x**2 + y**2), observation=(x, y, th, xd, yd, thd), dt=dt,
    units=("m", "m", "rad", "m/s", "m/s", "rad/s"),
)

# reachsafe compute-invariant examples/pvtol.py     (README, "The general route on the systems users bring")
