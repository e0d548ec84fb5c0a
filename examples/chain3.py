"""Three masses on springs and dampers in a chain (a standard benchmark, e.g. Bemporad et al. 2002's
oscillating masses), forces on the first and last mass: m = 1 kg, k = 1 N/m, c = 0.1 N s/m, |u| <= 1 N,
disturbance 0.05 N on the middle mass; Euler (semi-implicit), dt = 0.1 s.  6-D, m = 2.
"""
from reachsafe.systems.definition import SystemDefinition, exact, symbols

x1, x2, x3, v1, v2, v3 = symbols("x1 x2 x3 v1 v2 v3")
a1, a2 = symbols("a1 a2")
(w,) = symbols("w")
k, c, dt = exact(1), exact("0.1"), exact("0.1")
f1 = -k * x1 + k * (x2 - x1) - c * v1 + c * (v2 - v1) + a1
f2 = -k * (x2 - x1) + k * (x3 - x2) - c * (v2 - v1) + c * (v3 - v2) + w
f3 = -k * (x3 - x2) - k * x3 - c * (v3 - v2) - c * v3 + a2
v1n, v2n, v3n = v1 + dt * f1, v2 + dt * f2, v3 + dt * f3
DEFINITION = SystemDefinition(
    name="chain3", description="three oscillating masses, forces at both ends",
    state=(x1, x2, x3, v1, v2, v3), action=(a1, a2), noise=(w,),
    step=(x1 + dt * v1n, x2 + dt * v2n, x3 + dt * v3n, v1n, v2n, v3n),
    params={},
    constraint_lo=(-exact(1),) * 3 + (-exact(1),) * 3, constraint_hi=(exact(1),) * 6,
    noise_lo=(-exact("0.05"),), noise_hi=(exact("0.05"),),
    reward=-(x1**2 + x2**2 + x3**2), observation=(x1, x2, x3, v1, v2, v3), dt=dt,
)

# reachsafe compute-invariant examples/chain3.py     (README, "The general route on the systems users bring")
