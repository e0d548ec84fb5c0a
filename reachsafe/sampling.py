"""Random states in the invariant set P and random noise in the box W, as numpy arrays or torch tensors.

* :func:`sample_states` -- ``N`` states uniform in ``P = {x : A x <= b}`` (``[N, n]``), by
  rejection from P's bounding box (:class:`PolytopeSampler` computes the box once, with
  ``2 n`` linear programs, and then draws in vectorised chunks).
* :func:`sample_noise` -- ``N`` noise vectors uniform in ``W = [w_lo, w_hi]`` (``[N, p]``).

Both take ``rng``: ``None`` (fresh entropy), an ``int`` seed or a ``numpy.random.Generator``,
and ``dtype``: a numpy dtype (default float64, a numpy array is returned) or a torch dtype
(``torch.float32``: a tensor is returned; the numbers are drawn in float64 by numpy either
way, so a seed gives the same points in both forms, up to the final rounding)::

    from reachsafe import load_set, get_system, sample_states, sample_noise
    sf = load_set("data/pendulum.json")
    x = sample_states(sf, 64, rng=0, dtype=torch.float32)                     # [64, 2], in P
    w = sample_noise(get_system("pendulum"), 64, rng=1, dtype=torch.float32)  # [64, 1], in W

A float32 copy of a state inside P can lie outside P by a rounding error (up to about
``6e-8 |x|`` per coordinate); the safeguards accept states within ``outside_tol = 1e-6`` of P.
"""

from __future__ import annotations

import os
from typing import Any, Union

import numpy as np

from .setfile import SetFile, load_set
from .systems import get_system

__all__ = ["PolytopeSampler", "sample_states", "sample_noise", "as_generator"]

RngLike = Union[None, int, np.random.Generator]


def as_generator(rng: RngLike) -> np.random.Generator:
    """A ``numpy.random.Generator`` from ``None``, a seed or a generator (returned as is)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def _convert(x: np.ndarray, dtype: Any) -> Any:
    """``x`` (float64) as a numpy array of ``dtype``, or a torch tensor if ``dtype`` is a torch dtype."""
    if type(dtype).__module__.startswith("torch"):
        import torch  # lazy: torch; `import reachsafe` stays torch-free

        return torch.as_tensor(x, dtype=dtype)
    return np.asarray(x, dtype=dtype)


def _halfspaces(invariant_set: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` of a SetFile, a path to one, a set (HPolytope, Box, Zonotope) or a tuple ``(A, b)``.

    :raises reachsafe.sets.UnsupportedSetError: (a ``TypeError``) for anything else.
    """
    from .sets.convert import as_hpolytope  # lazy: reachsafe.sets needs scipy, which `import reachsafe` does not load

    if isinstance(invariant_set, (str, os.PathLike)):
        invariant_set = load_set(invariant_set)
    if isinstance(invariant_set, SetFile):
        A, b = invariant_set.A, invariant_set.b
    elif isinstance(invariant_set, tuple) and len(invariant_set) == 2:
        A, b = invariant_set
    else:
        poly = as_hpolytope(invariant_set, also="a SetFile, a path to one")
        A, b = poly.A, poly.b
    return np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)


class PolytopeSampler:
    """Uniform samples in ``P = {x : A x <= b}`` (bounded, non-empty) by rejection from its bounding box.

    The box ``[lo, hi]`` (``lo_j = min_P x_j``, ``hi_j = max_P x_j``) is computed once; each
    call draws candidates uniform in the box in chunks of ``ceil(1.2 N / acceptance)`` and keeps
    those with ``A x <= b`` (exact floating-point comparison, no tolerance), so every returned
    point satisfies ``A x <= b`` as evaluated in float64.

    :param A: ``[k, n]``; :param b: ``[k]``.
    :raises ValueError: P is empty or unbounded.
    """

    def __init__(self, A: Any, b: Any) -> None:
        from .sets import HPolytope  # lazy: scipy, as above

        poly = HPolytope(A, b)
        box = poly.bounding_box()
        self.A, self.b = poly.A, poly.b
        lo, hi = np.asarray(box.lo, dtype=np.float64), np.asarray(box.hi, dtype=np.float64)
        pad = 1e-9 * (hi - lo) + 1e-12  # the LP solver's box may be a hair too tight; rejection keeps P exact
        self.lo, self.hi = lo - pad, hi + pad
        self._rate = 0.5  # running acceptance-rate estimate, sizes the next chunk

    @property
    def n(self) -> int:
        return int(self.A.shape[1])

    def contains(self, x: np.ndarray) -> np.ndarray:
        """``A x <= b`` row-wise for ``x [N, n]`` -> bool ``[N]`` (float64, no tolerance)."""
        return np.all(x @ self.A.T <= self.b, axis=-1)

    def sample(self, N: int, rng: RngLike = None) -> np.ndarray:
        """``N`` points uniform in P, float64 ``[N, n]``."""
        gen = as_generator(rng)
        if N < 0:
            raise ValueError(f"N must be >= 0, got {N}")
        out, got, drawn = [], 0, 0
        while got < N:
            batch = int(min(500_000, max(16, np.ceil(1.2 * (N - got) / max(self._rate, 1e-4)))))
            cand = gen.uniform(self.lo, self.hi, size=(batch, self.n))
            keep = cand[self.contains(cand)]
            out.append(keep)
            got += len(keep)
            drawn += batch
            if drawn > 10_000_000 and got < N:
                raise ValueError(f"P fills less than {got / drawn:.1e} of its bounding box; rejection sampling "
                                 "is hopeless for this set")
        self._rate = max(1e-4, got / max(drawn, 1))
        return np.concatenate(out)[:N] if out else np.empty((0, self.n))


def sample_states(invariant_set: Any, N: int, rng: RngLike = None, dtype: Any = np.float64) -> Any:
    """``N`` states uniform in the set P, ``[N, n]`` (module docstring).

    :param invariant_set: a :class:`~reachsafe.setfile.SetFile`, a path to one, a set
        (:class:`~reachsafe.sets.HPolytope`, :class:`~reachsafe.sets.Box`, :class:`~reachsafe.sets.Zonotope`)
        or a tuple ``(A, b)``.
    :param N: number of states.
    :param rng: ``None``, an int seed or a ``numpy.random.Generator``.
    :param dtype: numpy dtype (numpy array out) or torch dtype (tensor out).
    """
    A, b = _halfspaces(invariant_set)
    return _convert(PolytopeSampler(A, b).sample(int(N), rng), dtype)


def sample_noise(system: Any, N: int, rng: RngLike = None, dtype: Any = np.float64) -> Any:
    """``N`` noise vectors uniform in the system's noise box W, ``[N, p]`` (in W's units).

    :param system: a :class:`~reachsafe.systems.CompiledSystem` or a system name / model file.
    """
    if isinstance(system, (str, os.PathLike)):
        system = get_system(str(system))
    gen = as_generator(rng)
    lo, hi = np.asarray(system.noise_lo, dtype=np.float64), np.asarray(system.noise_hi, dtype=np.float64)
    return _convert(gen.uniform(lo, hi, size=(int(N), len(lo))), dtype)
