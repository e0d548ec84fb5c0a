"""Everything that learns: the differentiable safeguarded environment, SHAC, SB3 baselines, runs.

Modules (import what you need; nothing heavy is imported here):

* :mod:`training.env`          — :class:`~training.env.SafeEnv`, batched differentiable torch env
* :mod:`training.gym_adapter`  — Gymnasium env and stable-baselines3 ``VecEnv`` adapters
* :mod:`training.shac`         — SHAC (config dataclass, networks, training loop)
* :mod:`training.baselines`    — PPO / SAC from stable-baselines3
* :mod:`training.runner`       — runs: configuration, the training driver (``train``), ``evaluate_run``
* :mod:`training.backends`     — SHAC and SB3 behind one protocol (init, resume, save, learn, policy)
* :mod:`training.rundir`       — the files of a run directory: config, metrics, checkpoints, curve
* :mod:`training.profiles`     — the training defaults a system's profile sets
* :mod:`training.evaluate`     — evaluation protocol (episodes -> :class:`reachsafe.rollouts.Rollouts`)
* :mod:`training.bench`        — ``reachsafe bench training``: safeguard wall-time overhead
"""
