"""Facet rows in floating point: unit-norm normalisation and the rows of the safe action set.

For a polytope ``P = {x : A x <= b}`` and a system ``x+ = c(x) + B(x) a + E(x) w`` with noise in
the box ``W = [w_lo, w_hi]``, the actions that keep every successor in ``P`` are

    S(x) = {a : G(x) a <= r(x)},   G = A B(x),   r = b - A c(x) - h_W(x),
    h_W(x)_i = max_{w in W} A_i E(x) w = A_i E w_c + |A_i E| w_r

(``w_c``, ``w_r`` centre and radius of ``W``).  These are plain float64 numpy evaluations, the
one implementation of them for the offline tools (synthesis margins, the certifier's
counterexample search, the audit benchmark); none of them is a proof.  The online safeguards
compute the same rows in torch (:mod:`reachsafe.safeguards.base`), and the certifier's proofs
use its own outward-rounded arithmetic.
"""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_rows", "noise_support", "safe_action_rows"]


def normalize_rows(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale each inequality ``A_i x <= b_i`` to a unit-norm normal: ``(A_i / ||A_i||, b_i / ||A_i||)``.

    :param A: normals [k, n], no zero row (callers that accept user input check that first).
    :param b: offsets [k].
    :returns: ``(A / ||A_i||, b / ||A_i||)``.
    """
    nrm = np.linalg.norm(A, axis=1)
    return A / nrm[:, None], b / nrm


def noise_support(AE: np.ndarray, w_lo: np.ndarray, w_hi: np.ndarray) -> np.ndarray:
    """Support function ``h_i = max_{w in [w_lo, w_hi]} (A E)_i w = (A E)_i w_c + |A E|_i w_r``.

    :param AE: ``A E(x)`` [..., k, p].
    :returns: ``h`` [..., k].
    """
    w_c = 0.5 * (w_lo + w_hi)
    w_r = 0.5 * (w_hi - w_lo)
    return AE @ w_c + np.abs(AE) @ w_r


def safe_action_rows(A: np.ndarray, b: np.ndarray, c: np.ndarray, B: np.ndarray, E: np.ndarray,
                     w_lo: np.ndarray, w_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``G a <= r`` of ``S(x)`` at a batch of states (module docstring), without the action box.

    :param A: facet normals [k, n].
    :param b: offsets [k].
    :param c: drift ``c(x)`` [N, n].
    :param B: action input ``B(x)`` [N, n, m].
    :param E: noise input ``E(x)`` [N, n, p].
    :param w_lo: lower corner of the noise box [p].
    :param w_hi: upper corner of the noise box [p].
    :returns: ``(G [N, k, m], r [N, k])``.
    """
    AE = np.einsum("kn,Nnp->Nkp", A, E)
    G = np.einsum("kn,Nnm->Nkm", A, B)
    r = b[None, :] - c @ A.T - noise_support(AE, w_lo, w_hi)
    return G, r
