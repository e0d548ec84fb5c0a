"""Exothermic CSTR, A -> B (Seborg, Edgar, Mellichamp, "Process Dynamics and Control", Example 2.5 data;
also Henson and Seborg, "Nonlinear Process Control", 1997), jacket temperature as input.

dC/dt = q/V (C_f - C) - k0 exp(-E/(R T)) C
dT/dt = q/V (T_f + w - T) + (-dH)/(rho C_p) k0 exp(-E/(R T)) C + UA/(V rho C_p) (T_c - T)
q = 100 L/min, V = 100 L, C_f = 1 mol/L, T_f = 350 K, k0 = 7.2e10 1/min, E/R = 8750 K, -dH = 5e4 J/mol,
rho = 1000 g/L, C_p = 0.239 J/(g K), UA = 5e4 J/(min K); T_c = 300 + 10 a K; feed temperature +-1 K.
Euler, dt = 0.01 min.  Around the open-loop unstable steady state C = 0.5, T = 350.
"""
import sympy as sp
from reachsafe.systems.definition import SystemDefinition, exact, symbols

C, T = symbols("C T")
(a,) = symbols("a")
(w,) = symbols("w")
q, V, Cf, Tf, k0, ER, dH, rho, Cp, UA = (exact(100), exact(100), exact(1), exact(350), exact("7.2e10"), exact(8750),
                                         exact("5e4"), exact(1000), exact("0.239"), exact("5e4"))
dt = exact("0.01")
r = k0 * sp.exp(-ER / T) * C
Tc = 300 + 10 * a
DEFINITION = SystemDefinition(
    name="cstr", description="exothermic CSTR, jacket temperature input",
    state=(C, T), action=(a,), noise=(w,),
    step=(C + dt * (q / V * (Cf - C) - r),
          T + dt * (q / V * (Tf + w - T) + dH / (rho * Cp) * r + UA / (V * rho * Cp) * (Tc - T))),
    params={},
    constraint_lo=(exact("0.3"), exact(340)), constraint_hi=(exact("0.7"), exact(360)),
    noise_lo=(-exact(1),), noise_hi=(exact(1),),
    reward=-((C - exact("0.5"))**2), observation=(C, T), dt=dt, units=("mol/L", "K"),
)

# reachsafe compute-invariant examples/cstr.py     (README, "The general route on the systems users bring")
