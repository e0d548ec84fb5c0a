"""Record episodes step by step and write them as a rollouts file (the contract :mod:`reachsafe.rollouts`).

A :class:`RolloutRecorder` follows ``L`` *lanes* (parallel environments, or a batch of
simulated episodes); each lane runs one episode after another.  Per call, all lanes (or the
lanes named by ``lanes``) advance together, so a training or evaluation loop never writes a
per-episode Python loop or an ``np.savez`` by hand::

    rec = RolloutRecorder(system, setfile)       # the set the episodes are guarded with
    rec.start(x0)                                # x0 [L, n]: L episodes begin
    for t in range(T):
        ...                                      # a_pol, a [L, m] in [-1, 1]^m, x_next [L, n]
        rec.step(x_next, a, policy_actions=a_pol, rewards=r, done=(t == T - 1))
    rec.save("rollouts.npz")                     # validated, atomic

Shapes: ``x0`` ``[k, n]`` for the ``k`` lanes that start; ``x_next`` ``[k, n]``, ``actions``
and ``policy_actions`` ``[k, m]`` (normalised, as executed / as the policy chose them),
``rewards`` and ``done`` ``[k]`` (a scalar is broadcast), for the ``k`` lanes that step.
An episode is *complete* when a step marks it ``done``; only complete episodes are written.
Starting a lane whose episode is still open drops that episode (it is counted in
:attr:`dropped`): a rollouts file holds episodes that ran to their end, of one length ``T``
(``[E, T+1, n]``); :meth:`rollouts` refuses episodes of different lengths with one line.

Storage: one column per recorder step (all lanes, NaN where a lane did not step); a finished
episode is copied out of its columns at once, and columns no open episode needs are dropped,
so memory stays at one episode per lane plus the finished episodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .rollouts import Rollouts, RolloutsError
from .setfile import SetFile, load_set, set_fingerprint
from .systems import get_system

__all__ = ["RolloutRecorder"]


def _to_numpy(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


class RolloutRecorder:
    """Collects episodes lane by lane; :meth:`save` writes ``rollouts.npz`` (module docstring).

    :param system: the :class:`~reachsafe.systems.CompiledSystem` the episodes follow (its name
        and model fingerprint are recorded), or a system name / model file path.
    :param invariant_set: the :class:`~reachsafe.setfile.SetFile` (or a path to one) whose set
        guarded the episodes (its :func:`~reachsafe.setfile.set_fingerprint` is recorded).
    :param noise: how the noise was produced (``"uniform"``, ``"adversarial"``,
        ``"environment"`` for a real environment, ...).
    :param extra: further metadata of the contract (``safeguard``, ``algo``, ``set_path``).
    """

    def __init__(self, system: Any, invariant_set: Any, noise: str = "unknown", **extra: Any) -> None:
        sf = invariant_set if isinstance(invariant_set, SetFile) else load_set(invariant_set)
        self.system = get_system(str(system)) if isinstance(system, (str, Path)) else system
        self.system_name, self.model_fingerprint = self.system.name, self.system.fingerprint
        self.set_fingerprint, self.noise = set_fingerprint(sf), str(noise)
        self.extra = dict(extra)
        if sf.path is not None:
            self.extra.setdefault("set_path", str(sf.path))
        self.n, self.m = self.system.n, self.system.m
        self._lanes = 0
        self._cols: dict[str, list[np.ndarray]] = {k: [] for k in ("S", "A", "P", "R")}
        self._base = 0  # global index of the first stored state column
        self._start = np.zeros(0, dtype=np.int64)  # per lane: global column of x_0, -1 if no open episode
        self._episodes: list[dict[str, np.ndarray]] = []
        self.dropped = 0

    # ---------------------------------------------------------------- lanes
    @property
    def episodes(self) -> int:
        """Number of complete episodes recorded so far."""
        return len(self._episodes)

    def _lane_index(self, lanes: Sequence[int] | np.ndarray | None, k: int, what: str) -> np.ndarray:
        if lanes is None:
            if self._lanes == 0:
                self._grow(k)
            if k != self._lanes:
                raise RolloutsError(f"RolloutRecorder.{what}: got {k} rows for {self._lanes} lanes; pass lanes=[...] "
                                    "to name the lanes the rows belong to")
            return np.arange(k)
        idx = np.asarray(lanes, dtype=np.int64).reshape(-1)
        if idx.size != k:
            raise RolloutsError(f"RolloutRecorder.{what}: {k} rows but {idx.size} lanes")
        if idx.size and idx.min() < 0:
            raise RolloutsError(f"RolloutRecorder.{what}: lane indices must be >= 0")
        if idx.size and idx.max() >= self._lanes:
            self._grow(int(idx.max()) + 1)
        return idx

    def _grow(self, lanes: int) -> None:
        extra = lanes - self._lanes
        self._start = np.concatenate([self._start, -np.ones(extra, dtype=np.int64)])
        for key, cols in self._cols.items():
            width = {"S": self.n, "A": self.m, "P": self.m, "R": 0}[key]
            for j, c in enumerate(cols):
                pad = np.full((extra,) + ((width,) if width else ()), np.nan)
                cols[j] = np.concatenate([c, pad])
        self._lanes = lanes

    def _matrix(self, x: Any, k: int, width: int, name: str) -> np.ndarray:
        a = _to_numpy(x)
        if a.ndim == 1 and k == 1 and a.shape[0] == width:
            a = a[None]
        if a.shape != (k, width):
            raise RolloutsError(f"RolloutRecorder: '{name}' must be [{k}, {width}], got {list(a.shape)}")
        return a

    # ------------------------------------------------------------- recording
    def start(self, x0: Any, lanes: Sequence[int] | np.ndarray | None = None) -> None:
        """Begin an episode in each of ``lanes`` (default: all) at the states ``x0`` ``[k, n]``."""
        x0 = _to_numpy(x0)
        k = x0.shape[0] if x0.ndim == 2 else 1
        x0 = self._matrix(x0, k, self.n, "x0")
        idx = self._lane_index(lanes, k, "start")
        self.dropped += int(np.count_nonzero(self._start[idx] >= 0))
        if not self._cols["S"]:
            self._cols["S"].append(np.full((self._lanes, self.n), np.nan))
        last = self._base + len(self._cols["S"]) - 1
        self._cols["S"][-1][idx] = x0  # the current column holds x_0 of these lanes
        self._start[idx] = last

    def step(self, x_next: Any, actions: Any, policy_actions: Any = None, rewards: Any = None, done: Any = False,
             lanes: Sequence[int] | np.ndarray | None = None) -> None:
        """Record one transition in each of ``lanes`` (default: all); ``done`` closes those episodes."""
        x_next = _to_numpy(x_next)
        k = x_next.shape[0] if x_next.ndim == 2 else 1
        idx = self._lane_index(lanes, k, "step")
        if np.any(self._start[idx] < 0):
            raise RolloutsError("RolloutRecorder.step: a lane has no open episode; call start(x0) first")
        stepping = np.zeros(self._lanes, dtype=bool)
        stepping[idx] = True
        if np.any((self._start >= 0) & ~stepping):
            raise RolloutsError("RolloutRecorder.step: every lane with an open episode must step; lane(s) "
                                f"{np.flatnonzero((self._start >= 0) & ~stepping)[:5].tolist()} did not")
        S = self._matrix(x_next, k, self.n, "x_next")
        A = self._matrix(actions, k, self.m, "actions")
        P = A if policy_actions is None else self._matrix(policy_actions, k, self.m, "policy_actions")
        R = np.zeros(k) if rewards is None else np.broadcast_to(_to_numpy(rewards), (k,)).copy()
        for key, val, width in (("S", S, self.n), ("A", A, self.m), ("P", P, self.m), ("R", R, 0)):
            col = np.full((self._lanes,) + ((width,) if width else ()), np.nan)
            col[idx] = val
            self._cols[key].append(col)
        fin = idx[np.broadcast_to(np.asarray(done, dtype=bool), (k,))]
        if fin.size:
            self._close(fin)

    def _close(self, lanes: np.ndarray) -> None:
        """Copy the finished episodes of ``lanes`` out of the columns, then drop unneeded columns."""
        end = self._base + len(self._cols["S"]) - 1  # global column of the last state
        first = int(self._start[lanes].min()) - self._base
        S = np.stack(self._cols["S"][first:], axis=1)  # [L, cols, n]
        A = np.stack(self._cols["A"][first:], axis=1)  # actions column j leads to state column j+1
        P = np.stack(self._cols["P"][first:], axis=1)
        R = np.stack(self._cols["R"][first:], axis=1)
        for i in lanes:  # one copy per finished episode
            s = int(self._start[i]) - self._base - first
            self._episodes.append({"states": S[i, s:].copy(), "actions": A[i, s:].copy(),
                                   "policy_actions": P[i, s:].copy(), "rewards": R[i, s:].copy()})
        self._start[lanes] = -1
        open_ = self._start[self._start >= 0]
        keep_from = int(open_.min()) if open_.size else end
        drop = keep_from - self._base
        if drop > 0:
            self._cols["S"] = self._cols["S"][drop:]
            for key in ("A", "P", "R"):
                self._cols[key] = self._cols[key][drop:]
            self._base = keep_from

    # ---------------------------------------------------------------- output
    def rollouts(self) -> Rollouts:
        """The complete episodes as a validated :class:`~reachsafe.rollouts.Rollouts`.

        :raises RolloutsError: no complete episode, or episodes of different lengths.
        """
        if not self._episodes:
            raise RolloutsError("no complete episode recorded: mark the last step of an episode with done=True "
                                "(a Shield does so at termination or truncation)")
        lengths = sorted({len(e["rewards"]) for e in self._episodes})
        if len(lengths) > 1:
            raise RolloutsError(f"episodes of different lengths {lengths[:5]}{'...' if len(lengths) > 5 else ''}; a "
                                "rollouts file holds episodes of one length T: record with a fixed horizon (a "
                                "TimeLimit and no early termination)")
        stack = {k: np.stack([e[k] for e in self._episodes]) for k in ("states", "actions", "policy_actions",
                                                                     "rewards")}
        return Rollouts(**stack, system=self.system_name, set_fingerprint=self.set_fingerprint,  # type: ignore[arg-type]
                        model_fingerprint=self.model_fingerprint, noise=self.noise,
                        extra=dict(self.extra)).validate()

    def save(self, path: str | Path) -> Path:
        """Validate and write the complete episodes to ``path`` atomically (:meth:`Rollouts.save`)."""
        return self.rollouts().save(path)
