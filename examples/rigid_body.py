"""Angular rates of a rigid spacecraft with three reaction torques (3-D, m = 3, gyroscopic coupling).

Source: Euler's rotational equations of a rigid body in principal axes (Wie, "Space Vehicle
Dynamics and Control", 2nd ed., 2008, sec. 6.2)::

    J1 p' = (J2 - J3) q r + tau1,   J2 q' = (J3 - J1) r p + tau2,   J3 r' = (J1 - J2) p q + tau3

with ``J = diag(10, 8, 6)`` kg m^2, torques ``tau_i = 0.5 a_i`` N m and a bounded torque
disturbance ``|w_i| <= 0.02`` N m on each axis.  Explicit Euler, ``dt = 0.1`` s.  X: every rate
within ``0.5`` rad/s.

At rest the linearisation does not couple the axes, so synthesis first splits the state into
``(p) x (q) x (r)``; bounded over all of X, each axis's gyroscopic term takes the whole torque
authority of that axis, no part gets a set, and the split is dropped for the whole 3-D system.

    reachsafe compute-invariant examples/rigid_body.py
"""

from reachsafe.systems.definition import SystemDefinition, exact, symbols

p, q, r = symbols("p q r")
a1, a2, a3 = symbols("a1 a2 a3")
w1, w2, w3 = symbols("w1 w2 w3")
J1, J2, J3 = exact(10), exact(8), exact(6)
tau, dt = exact("0.5"), exact("0.1")

DEFINITION = SystemDefinition(
    name="rigid_body",
    description="rigid spacecraft angular rates, three reaction torques, gyroscopic coupling, torque disturbance",
    state=(p, q, r),
    action=(a1, a2, a3),
    noise=(w1, w2, w3),
    step=(p + dt * ((J2 - J3) * q * r + tau * a1 + w1) / J1,
          q + dt * ((J3 - J1) * r * p + tau * a2 + w2) / J2,
          r + dt * ((J1 - J2) * p * q + tau * a3 + w3) / J3),
    params={},
    constraint_lo=(-exact("0.5"),) * 3,
    constraint_hi=(exact("0.5"),) * 3,
    noise_lo=(-exact("0.02"),) * 3,
    noise_hi=(exact("0.02"),) * 3,
    reward=-(p**2 + q**2 + r**2),
    observation=(p, q, r),
    dt=dt,
    units=("rad/s", "rad/s", "rad/s"),
)
