"""Quadruple-tank process (Johansson, IEEE TCST 8(3), 2000), minimum-phase setting P-.

dh1/dt = -a1/A1 sqrt(2 g h1) + a3/A1 sqrt(2 g h3) + g1 k1/A1 v1
dh2/dt = -a2/A2 sqrt(2 g h2) + a4/A2 sqrt(2 g h4) + g2 k2/A2 v2
dh3/dt = -a3/A3 sqrt(2 g h3) + (1 - g2) k2/A3 v2
dh4/dt = -a4/A4 sqrt(2 g h4) + (1 - g1) k1/A4 v1
A1 = A3 = 28, A2 = A4 = 32 cm^2, a1 = a3 = 0.071, a2 = a4 = 0.057 cm^2, g = 981 cm/s^2, k1 = 3.33, k2 = 3.35
cm^3/(V s), g1 = 0.7, g2 = 0.6; pump voltages v = 3 + 1.5 a V; inflow disturbances on the lower tanks.
Euler, dt = 1 s.
"""
import sympy as sp
from reachsafe.systems.definition import SystemDefinition, exact, symbols

h1, h2, h3, h4 = symbols("h1 h2 h3 h4")
a1_, a2_ = symbols("a1 a2")
w1, w2 = symbols("w1 w2")
A1 = A3 = exact(28)
A2 = A4 = exact(32)
o1 = o3 = exact("0.071")
o2 = o4 = exact("0.057")
g, k1, k2, g1, g2, dt = exact(981), exact("3.33"), exact("3.35"), exact("0.7"), exact("0.6"), exact(1)
v1, v2 = 3 + exact("1.5") * a1_, 3 + exact("1.5") * a2_


def s(h):
    """Torricelli: outflow speed sqrt(2 g h)."""
    return sp.sqrt(2 * g * h)


DEFINITION = SystemDefinition(
    name="quadtank", description="Johansson quadruple tank, minimum-phase setting",
    state=(h1, h2, h3, h4), action=(a1_, a2_), noise=(w1, w2),
    step=(h1 + dt * (-o1 / A1 * s(h1) + o3 / A1 * s(h3) + g1 * k1 / A1 * v1 + w1),
          h2 + dt * (-o2 / A2 * s(h2) + o4 / A2 * s(h4) + g2 * k2 / A2 * v2 + w2),
          h3 + dt * (-o3 / A3 * s(h3) + (1 - g2) * k2 / A3 * v2),
          h4 + dt * (-o4 / A4 * s(h4) + (1 - g1) * k1 / A4 * v1)),
    params={},
    constraint_lo=(exact(8), exact(8), exact("0.5"), exact("0.5")),
    constraint_hi=(exact(18), exact(18), exact(4), exact(4)),
    noise_lo=(-exact("0.005"),) * 2, noise_hi=(exact("0.005"),) * 2,
    reward=-((h1 - exact("12.4"))**2 + (h2 - exact("12.7"))**2), observation=(h1, h2, h3, h4), dt=dt,
    units=("cm", "cm", "cm", "cm"),
)

# reachsafe compute-invariant examples/quadtank.py     (README, "The general route on the systems users bring")
