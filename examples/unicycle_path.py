"""A unicycle following a straight path, with its speed as a state and two actions (3-D, m = 2).

Source: the unicycle kinematics ``x' = v cos(theta)``, ``y' = v sin(theta)``, ``theta' = omega``
(Siegwart, Nourbakhsh and Scaramuzza, "Introduction to Autonomous Mobile Robots", 2nd ed.,
2011, sec. 3.2), written relative to a straight path (cross-track error ``d`` [m], heading
error ``psi`` [rad]), with the speed ``v`` [m/s] driven by an acceleration command.  Actions:
turn rate ``omega = 1.0 a1`` rad/s and acceleration ``1.0 a2`` m/s^2; a bounded lateral drift
``|w| <= 0.05`` m/s.  Explicit Euler, ``dt = 0.05`` s::

    d+   = d + dt (v sin(psi) + w)
    psi+ = psi + dt omega
    v+   = v + dt acc

X: ``|d| <= 1`` m, ``|psi| <= 0.6`` rad, ``0.5 <= v <= 2`` m/s (the robot keeps moving).  The
speed only scales how fast the heading moves the robot across the path, so synthesis splits
the state into ``(d, psi)``, with ``v`` as bounded coupling noise, and ``(v)``.

    reachsafe compute-invariant examples/unicycle_path.py
"""

import sympy as sp

from reachsafe.systems.definition import SystemDefinition, exact, symbols

d, psi, v = symbols("d psi v")
omega, acc = symbols("omega acc")
(w,) = symbols("w")
dt = exact("0.05")

DEFINITION = SystemDefinition(
    name="unicycle_path",
    description="unicycle in path coordinates with speed as a state; turn rate and acceleration; lateral drift",
    state=(d, psi, v),
    action=(omega, acc),
    noise=(w,),
    step=(d + dt * (v * sp.sin(psi) + w), psi + dt * omega, v + dt * acc),
    params={},
    constraint_lo=(-exact(1), -exact("0.6"), exact("0.5")),
    constraint_hi=(exact(1), exact("0.6"), exact(2)),
    noise_lo=(-exact("0.05"),),
    noise_hi=(exact("0.05"),),
    reward=-(d**2 + exact("0.1") * psi**2),
    observation=(d, psi, v),
    dt=dt,
    units=("m", "rad", "m/s"),
)
