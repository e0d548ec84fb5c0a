"""Vehicle lateral error dynamics with a steering actuator (Rajamani, "Vehicle Dynamics and Control",
2nd ed., sec. 2.5 and 3.2, linear bicycle model at constant speed): e1 lateral error [m], e2 heading
error [rad], their rates, and the steering angle delta driven by a rate input (|delta'| <= 0.5 rad/s).
m = 1573 kg, I_z = 2873 kg m^2, l_f = 1.1 m, l_r = 1.58 m, C_f = C_r = 80000 N/rad, V_x = 30 m/s;
road-curvature disturbances on both accelerations.  Euler, dt = 0.01 s.  5-D, m = 1.
"""
from reachsafe.systems.definition import SystemDefinition, exact, symbols

e1, e1d, e2, e2d, dl = symbols("e1 e1_dot e2 e2_dot delta")
(a,) = symbols("a")
w1, w2 = symbols("w1 w2")
m, Iz, lf, lr, Cf, Cr, Vx = exact(1573), exact(2873), exact("1.1"), exact("1.58"), exact(80000), exact(80000), exact(30)
dt = exact("0.01")
e1dd = (-(2 * Cf + 2 * Cr) / (m * Vx) * e1d + (2 * Cf + 2 * Cr) / m * e2
        + (-2 * Cf * lf + 2 * Cr * lr) / (m * Vx) * e2d + 2 * Cf / m * dl + w1)
e2dd = (-(2 * Cf * lf - 2 * Cr * lr) / (Iz * Vx) * e1d + (2 * Cf * lf - 2 * Cr * lr) / Iz * e2
        - (2 * Cf * lf**2 + 2 * Cr * lr**2) / (Iz * Vx) * e2d + 2 * Cf * lf / Iz * dl + w2)
DEFINITION = SystemDefinition(
    name="lateral5", description="vehicle lateral error dynamics with a steering-rate input",
    state=(e1, e1d, e2, e2d, dl), action=(a,), noise=(w1, w2),
    step=(e1 + dt * e1d, e1d + dt * e1dd, e2 + dt * e2d, e2d + dt * e2dd, dl + dt * exact("0.5") * a),
    params={},
    constraint_lo=(-exact(1), -exact(2), -exact("0.2"), -exact(1), -exact("0.1")),
    constraint_hi=(exact(1), exact(2), exact("0.2"), exact(1), exact("0.1")),
    noise_lo=(-exact("0.5"), -exact("0.2")), noise_hi=(exact("0.5"), exact("0.2")),
    reward=-(e1**2), observation=(e1, e1d, e2, e2d, dl), dt=dt,
)

# reachsafe compute-invariant examples/lateral5.py     (README, "The general route on the systems users bring")
