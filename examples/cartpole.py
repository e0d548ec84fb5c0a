"""Cart-pole with a continuous force: gymnasium's ``CartPole-v1`` physics (4-D).

Source: gymnasium ``classic_control/cartpole.py`` (Barto, Sutton and Anderson, 1983, with the
pole equations of Florian, "Correct equations for the dynamics of the cart-pole system",
2007, as gymnasium implements them): gravity 9.8 m/s^2, cart mass 1.0 kg, pole mass 0.1 kg,
pole half-length 0.5 m, force magnitude 10 N, ``tau = 0.02`` s, explicit Euler (positions
advanced with the old velocities).  gymnasium applies ``+-10`` N; here the force is
continuous, ``F = 10 a`` with ``a`` in [-1, 1], plus a bounded force disturbance.

State ``x = (x, x_dot, theta, theta_dot)`` [m, m/s, rad, rad/s]::

    temp      = (F + w + m_p l theta_dot^2 sin(theta)) / (m_c + m_p)
    theta_acc = (g sin(theta) - cos(theta) temp) / (l (4/3 - m_p cos(theta)^2 / (m_c + m_p)))
    x_acc     = temp - m_p l theta_acc cos(theta) / (m_c + m_p)

Safety box X: gymnasium's termination thresholds, ``|x| <= 2.4`` m and
``|theta| <= 12 deg = 0.2094`` rad, and (our choice, gymnasium does not bound them)
``|x_dot| <= 2`` m/s, ``|theta_dot| <= 2`` rad/s.  Noise ``|w| <= 0.5`` N.

    reachsafe compute-invariant examples/cartpole.py --out data/examples/cartpole.json
"""

import sympy as sp

from reachsafe.systems.definition import SystemDefinition, exact, symbols

x, x_dot, theta, theta_dot = symbols("x x_dot theta theta_dot")
(a,) = symbols("a")
(w,) = symbols("w")
g, m_c, m_p, half_len, force_mag, tau = (exact("9.8"), exact("1.0"), exact("0.1"), exact("0.5"),
                                         exact("10.0"), exact("0.02"))
total = m_c + m_p
temp = (force_mag * a + w + m_p * half_len * theta_dot**2 * sp.sin(theta)) / total
theta_acc = (g * sp.sin(theta) - sp.cos(theta) * temp) / (
    half_len * (exact(4) / 3 - m_p * sp.cos(theta) ** 2 / total))
x_acc = temp - m_p * half_len * theta_acc * sp.cos(theta) / total

DEFINITION = SystemDefinition(
    name="cartpole",
    description="gymnasium CartPole-v1 physics with a continuous force and a bounded force disturbance",
    state=(x, x_dot, theta, theta_dot),
    action=(a,),
    noise=(w,),
    step=(x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc),
    params={},
    constraint_lo=(-exact("2.4"), -exact(2), -exact("0.2094"), -exact(2)),
    constraint_hi=(exact("2.4"), exact(2), exact("0.2094"), exact(2)),
    noise_lo=(-exact("0.5"),),
    noise_hi=(exact("0.5"),),
    reward=-(x**2 + theta**2 + exact("0.1") * (x_dot**2 + theta_dot**2)),
    observation=(x, x_dot, theta, theta_dot),
    dt=tau,
    units=("m", "m/s", "rad", "rad/s"),
)
