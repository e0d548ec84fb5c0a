"""Synthesis + certification loop behind ``reachsafe compute-invariant``.

1. the system's synthesis plan (:func:`verification.synthesis.plans.plan_for`): template normals,
   possibly over subsystems whose product is the candidate;
2. shrink each part's offsets until every sampled state has the robust margin
   (:func:`verification.synthesis.invariant.shrink_to_invariant`), then take the product;
3. drop redundant rows, write the candidate into a private temporary folder beside the
   output and run the independent certifier on it;
4. certified: move the set file and its proof artifact into place (rename, atomic);
   otherwise raise the margin by half, add the certifier's counterexample (if any) to the
   states tested in every later iteration, and continue shrinking from the current
   polytope, until the time budget is spent.  Nothing is left behind on failure.
"""

from __future__ import annotations

import datetime
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reachsafe import __version__
from reachsafe.setfile import SetFile, install_certified_set, load_set
from reachsafe.systems import model_file_of
from reachsafe.workdir import make_workdir, remove_workdir
from reachsafe.sets import HPolytope

from .decomposition import embed
from .invariant import SynthesisConfig, shrink_to_invariant
from .plans import plan_for

__all__ = ["Outcome", "compute_certified_invariant", "DEFAULT_MARGIN"]

# starting robust margin of the sampled states (state units along unit normals)
DEFAULT_MARGIN = {"pendulum": 2e-3, "quadrotor": 5e-3}


@dataclass
class Outcome:
    code: int  # 0 certified and written, 1 not certified, 3 undecided / out of time
    message: str
    setfile: SetFile | None = None


def _volume(P: HPolytope, rng_seed: int) -> dict:
    est = P.volume(n_samples=400_000, rng=np.random.default_rng(rng_seed)) if P.dim > 3 else P.volume()
    return {"value": float(est.value), "method": est.method, "stderr": float(est.stderr)}


def compute_certified_invariant(system, out: Path, facets: int | None = None, time_budget: float = 1200.0,
                                seed: int = 0, margin: float | None = None, progress: bool = True) -> Outcome:
    """Run the loop of the module docstring; write ``out`` only when certified."""
    from reachsafe.progress import progress_bar as tqdm  # plain lines when stderr is not a terminal

    from ..certification.certifier import certify

    t0 = time.monotonic()
    deadline = t0 + time_budget
    plan = plan_for(system, facets)
    cfg = SynthesisConfig(margin=margin or DEFAULT_MARGIN.get(system.name, 2e-3), step=5e-4, seed=seed)
    offsets: list[np.ndarray | None] = [None] * len(plan)
    counterexamples: list[np.ndarray] = []
    bar = tqdm(total=None, desc=f"{system.name}: synthesis", unit="it", disable=not progress, file=sys.stderr)
    last_status = "undecided"
    iterations = 0

    def report(info: dict) -> None:
        bar.update(1)
        bar.set_postfix(bad=info["bad"], margin=f"{info['min_margin']:.2e}", refresh=False)

    while time.monotonic() < deadline:
        rows = []
        converged = True
        for k, part in enumerate(plan):
            cfg_k = SynthesisConfig(**{**cfg.__dict__, "n_interior": part.n_interior, "n_boundary": part.n_boundary})
            extra = np.array(counterexamples)[:, list(part.idx)] if counterexamples else None
            res = shrink_to_invariant(part.system, part.normals, offsets[k], cfg_k, progress=report,
                                      deadline=deadline, extra_points=extra)
            offsets[k] = res.b
            iterations += res.iterations
            converged &= res.converged
            rows.append((part.idx, res.A, res.b))
        if not converged:
            break
        A, b = embed(system.n, rows)
        P = HPolytope(A, b).remove_redundant()
        vol = _volume(P, seed)
        bar.set_description(f"{system.name}: certifying (volume {vol['value']:.4g})")
        sf = SetFile.for_system(
            system, P.A, P.b, volume=vol,
            provenance={
                "command": f"reachsafe compute-invariant {model_file_of(system) or system.name}"
                           + (f" --seed {seed}" if seed else ""),
                "method": "counterexample-guided template shrinking (verification/synthesis/invariant.py)",
                "parts": [{"system": p.system.name, "coordinates": list(p.idx), "template_rows": int(p.normals.shape[0])}
                          for p in plan],
                "synthesis_margin": cfg.margin,
                "synthesis_iterations": iterations,
                "synthesis_time_s": round(time.monotonic() - t0, 2),
                "tool_version": __version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            },
        )
        tmpdir = make_workdir(out.parent)  # stale .reachsafe-* folders of killed runs are removed here
        try:
            cand = tmpdir / out.name
            sf.save(cand)
            result = certify(cand, time_budget=max(1.0, deadline - time.monotonic()), progress=progress)
            last_status = result.status
            if result.status == "certified":
                # an identical certified set already at `out` stays untouched (clean working tree)
                done = "wrote" if install_certified_set(cand, out) else "kept (same A, b and model)"
                bar.close()
                final = load_set(out)
                return Outcome(0, f"{done} {out}: {system.name}, {P.A.shape[0]} facets, volume {vol['value']:.4g}"
                                  f" ({vol['method']}), certified in {result.time_s:.1f} s "
                                  f"(total {time.monotonic() - t0:.1f} s)", final)
        finally:
            remove_workdir(tmpdir)
        if result.counterexample is not None:
            counterexamples.append(np.asarray(result.counterexample.x, dtype=np.float64))
        cfg.margin *= 1.5
        bar.set_description(f"{system.name}: {result.status}, margin -> {cfg.margin:.1e}")
    bar.close()
    code = 3 if last_status == "undecided" else 1
    return Outcome(code, f"{system.name}: no certified set within {time_budget:.0f} s "
                         f"(last certifier verdict: {last_status}); nothing written. Try a larger --time-budget.")
