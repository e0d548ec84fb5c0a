"""Docking sled with three thrusters: a worked example with m = 3 actions.

A sled on an air-bearing rail (the one-axis docking rigs used to test spacecraft
rendezvous hardware) is moved by three cold-gas thrusters: a main thruster pushing
forward, a retro thruster pushing backward, and a small two-way vernier.  The thrusters
are redundant (any net force can be made in several ways), which is what makes the
safe-action set a genuinely 3-D polytope.  No published model is used: the dynamics are
the textbook double integrator with linear and cubic drag of the rail's air film.

State ``x = (p, v)``: position along the rail [m] (0 = the docking port's approach point)
and velocity [m/s].  Actions ``a = (a_main, a_retro, a_vern)`` in [-1, 1]^3: the main and
retro thrusters push with ``T_m (1 + a_main) / 2`` and ``T_r (1 + a_retro) / 2`` (one-way,
in [0, T]); the vernier with ``T_v a_vern`` (two-way).  Noise ``w``: acceleration from the
rail's tilt and the hoses [m/s^2].

Continuous dynamics (per unit mass)::

    v_dot = T_m (1 + a_main)/2 - T_r (1 + a_retro)/2 + T_v a_vern - c_1 v - c_3 v^3 + w

integrated by semi-implicit Euler with ``dt = 0.1`` s::

    v+ = v + dt v_dot,      p+ = p + dt v+

Affine in ``(a, w)`` for each fixed state; only ``+``, ``*`` and integer powers.

Safety constraint X: ``|p| <= 1`` m, ``|v| <= 0.4`` m/s.  Noise box W: ``|w| <= 0.03``
m/s^2.  Reward: reach the approach point, with a fuel cost per thruster,
``-(p^2 + 0.1 v^2 + 0.01 ((1 + a_main)^2 + (1 + a_retro)^2 + a_vern^2))``.
"""

from __future__ import annotations

from reachsafe.systems.definition import SystemDefinition, exact, symbols

p, v = symbols("p v")  # state: position [m], velocity [m/s]
a_main, a_retro, a_vern = symbols("a_main a_retro a_vern")  # thruster commands in [-1, 1]
(w,) = symbols("w")  # noise: disturbance acceleration [m/s^2]
T_m, T_r, T_v, c_1, c_3, dt = symbols("T_m T_r T_v c_1 c_3 dt")

PARAMS = {
    T_m: exact("0.4"),  # main thruster, full thrust per unit mass [m/s^2]
    T_r: exact("0.3"),  # retro thruster [m/s^2]
    T_v: exact("0.1"),  # vernier, either way [m/s^2]
    c_1: exact("0.05"),  # linear drag of the air film [1/s]
    c_3: exact("0.5"),  # cubic drag [s/m^2]
    dt: exact("0.1"),  # integration step [s]
}

v_dot = (T_m * (1 + a_main) / 2 - T_r * (1 + a_retro) / 2 + T_v * a_vern
         - c_1 * v - c_3 * v**3 + w)
v_next = v + dt * v_dot
p_next = p + dt * v_next

DEFINITION = SystemDefinition(
    name="docking_sled",
    description="one-axis docking sled, main + retro + vernier thrusters (m = 3), air-film drag, bounded push",
    state=(p, v),
    action=(a_main, a_retro, a_vern),
    noise=(w,),
    step=(p_next, v_next),
    params=PARAMS,
    constraint_lo=(-exact(1), -exact("0.4")),
    constraint_hi=(exact(1), exact("0.4")),
    noise_lo=(-exact("0.03"),),
    noise_hi=(exact("0.03"),),
    reward=-(p**2 + exact("0.1") * v**2
             + exact("0.01") * ((1 + a_main)**2 + (1 + a_retro)**2 + a_vern**2)),
    observation=(p, v),
    dt=PARAMS[dt],
    units=("m", "m/s"),
    state_names=("p", "v"),
    action_names=("a_main", "a_retro", "a_vern"),
)
