"""Synthesis + certification loop behind ``reachsafe compute-invariant``: one route for every system.

1. **Plan** (:func:`.plans.plan_for`): the parts of the system found on its linearisation's
   dependency graph (one part for a system that does not split); all work is done in
   coordinates normalised by X (:mod:`.scaling`).  A split that leaves some part without a
   candidate (its coupling, bounded over all of X, can take the whole action authority, as
   a rigid body's gyroscopic terms do) is dropped, and the whole system is one part.
2. **Candidates per part**, both routes where they apply, the larger kept:

   * *linear feedback* (:mod:`.linear_mas`): at an equilibrium with a stabilisable
     linearisation, the robust maximal admissible set of an LQR closed loop, with the
     linearisation error bounded as extra noise, and the LQR weights searched for the
     largest such set (:data:`.linear_mas.SEARCH_TRIALS` trials per part);
   * *template shrinking* (:mod:`.invariant`): a template (:mod:`.templates`) shrunk from X
     until every sampled state keeps every noisy successor inside (parts of up to three
     coordinates, or where no stabilisable equilibrium exists).

3. **Product** of the parts' candidates, redundant rows dropped, written into a private
   temporary folder beside the output and handed to the independent certifier.
4. **Certified**: set file and proof artifact move into place (rename, atomic).  Refuted:
   the margins grow and the counterexample joins the sampled states; the loop repeats
   until the time budget is spent.  Nothing is left behind on failure, and every failure
   ends in one line that says what happened and what to try.

Defaults fit the system's scale: margins are in normalised units, tied to how far the
action moves each coordinate in one step (:func:`.scaling.one_step_authority`).
"""

from __future__ import annotations

import datetime
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reachsafe import __version__
from reachsafe.setfile import SetFile, install_certified_set, load_set
from reachsafe.workdir import make_workdir, remove_workdir
from reachsafe.sets import HPolytope
from reachsafe.systems import model_file_of

from ..certification.certifier import certify
from .invariant import SynthesisConfig, shrink_to_invariant
from .linear_mas import SEARCH_TRIALS, feedback_candidates
from .plans import PlanPart, plan_for, whole_plan
from .scaling import one_step_authority
from .structure import embed
from .templates import linearisation, template, unreachable_modes

__all__ = ["Outcome", "compute_certified_invariant", "default_margin", "LINEAR_MARGIN"]

LINEAR_MARGIN = 1e-4  # room left by the linear-feedback route, normalised units
MARGIN_CAP = 1e-3  # default shrinking margin (normalised units) of systems with three or more states
MARGIN_CAP_2D = 1e-4  # ... and of 2-D systems (default_margin)
SHRINK_MAX_DIM = 4  # template shrinking is tried on parts of at most this many coordinates (or without equilibrium)
CERTIFY_SHARE = 0.5  # of the remaining budget one certification may use while a retry could still follow
MIN_CERTIFY_S = 60.0  # the shortest certification slice worth starting
SHRINK_SHARE = 0.4  # of the remaining budget that one part's shrinking may use when a linear candidate exists
LINEAR_SHARE = 0.4  # of the remaining budget that one part's linear-feedback route may use
LINEAR_CAP_S = 300.0  # ... and at most this many seconds (slowly contracting loops need thousands of steps)
SHRINK_CAP_S = 180.0  # ... and at most this many seconds (a shrink that converges does so well within it)


@dataclass
class Outcome:
    code: int  # 0 certified and written, 3 no certified set within the budget
    message: str
    setfile: SetFile | None = None
    log: list[str] = field(default_factory=list)


@dataclass
class _Candidate:
    route: str
    A: np.ndarray  # normalised coordinates of the part, unit rows
    b: np.ndarray
    volume_fraction: float  # of the part's box
    info: dict


def default_margin(part: PlanPart, n_system: int | None = None) -> float:
    """Shrinking margin (normalised units): ``min(cap, 0.05 max_i authority_i)``.

    ``cap`` is 1e-3 of each half-range, which leaves the certifier room for rounding and cell
    enclosures in three or more dimensions; a 2-D system (``n_system == 2``) gets 1e-4, because
    its certifier refines a plane, where a thinner margin costs a few more cells, and a thick
    one costs coverage (with the dense 2-D fan of :func:`.templates.template`: MountainCar
    88 % -> 94 % of its kernel estimate, Pendulum-v1 91 % -> 96 %).
    Where the action moves no coordinate by more than 2 % of its half-range per step (slow
    actuation, e.g. a mountain car), the margin shrinks with it so that the action can
    still produce it.
    """
    cap = MARGIN_CAP_2D if (n_system if n_system is not None else part.scaled.n) == 2 else MARGIN_CAP
    auth = one_step_authority(part.scaled)
    return float(min(cap, 0.05 * auth.max())) if auth.max() > 0 else cap


def _initial_margins(plan: list[PlanPart], n_system: int, margin: float | None) -> tuple[list[float], list[float]]:
    """Per part: the shrinking margin (``margin``, or :func:`default_margin`) and the linear route's."""
    return ([margin if margin is not None else default_margin(p, n_system) for p in plan],
            [LINEAR_MARGIN] * len(plan))


class _Log:
    """Progress lines on stderr (plain text; one line per event)."""

    def __init__(self, enabled: bool, name: str) -> None:
        self.enabled, self.name, self.lines = enabled, name, []
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        line = f"{self.name}: {msg} ({time.monotonic() - self.t0:.0f} s)"
        self.lines.append(line)
        if self.enabled:
            print(line, file=sys.stderr, flush=True)


def _mc_fraction(A: np.ndarray, b: np.ndarray, n: int, seed: int, samples: int = 100_000) -> float:
    Z = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(samples, n))
    return float(np.mean(np.all(Z @ A.T <= b, axis=1)))


def _shrink(part: PlanPart, facets: int | None, margin: float, seed: int, deadline: float, log: _Log,
            extra: np.ndarray | None, start: np.ndarray | None, normals: np.ndarray | None,
            system_dim: int | None = None) -> _Candidate | str:
    """Template shrinking for one part: a candidate, or why there is none."""
    A0, tinfo = (template(part.scaled, part.operating, facets, seed, system_dim) if normals is None
                 else (normals, {}))
    # boundary refinement (invariant.refine_boundary) from 3-D up: in 2-D the 3000 rays of an
    # iteration already cover the boundary densely, and those sets certify as sampled
    cfg = SynthesisConfig(margin=margin, step=5e-4, seed=seed, max_iters=1_000_000,
                          refine_keep=SynthesisConfig.refine_keep if part.scaled.n >= 3 else 0)
    last = [time.monotonic()]

    def report(info: dict) -> None:
        if time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            log(f"shrinking {part.describe()}: iteration {info['iteration']}, {info['bad']} sampled states "
                f"without margin (worst {info['min_margin']:.1e})")

    res = shrink_to_invariant(part.scaled, A0, start, cfg, progress=report, deadline=deadline, extra_points=extra)
    if res.empty:
        why = f"the candidate became empty (template of {len(A0)} normals, margin {margin:.1e})"
        lacking = sum(h["min_margin"] < 0.0 for h in res.history)
        if res.history and lacking <= max(1, len(res.history) // 100):
            # (almost) no sampled state ever lacked a safe action, only the room a proof needs: states that the
            # actions can at best keep exactly where they are (a unicycle that stops at X's corner); the last
            # iterations, on a nearly flat polytope, may see a few without one
            why += (": every sampled state had a safe action, but some never with room to spare (the best one "
                    "leaves them exactly where they are); give such states a way inward (damping or drift "
                    "towards the inside of X), or describe them relative to a path or reference "
                    "(examples/lane_keeping.py)")
        log(f"shrinking {part.describe()}: {why}")
        return why
    if not res.converged:
        why = f"stopped by the time budget after {res.iterations} iterations"
        log(f"shrinking {part.describe()}: {why}")
        return why
    frac = _mc_fraction(res.A, res.b, part.scaled.n, seed)
    log(f"shrinking {part.describe()}: {100 * frac:.1f} % of X after {res.iterations} iterations")
    return _Candidate("template shrinking", res.A, res.b, frac,
                      {"template": tinfo, "margin": margin, "iterations": res.iterations})


def _linear(part: PlanPart, margin: float, seed: int, deadline: float, log: _Log) -> _Candidate | str:
    """Linear-feedback route for one part: a candidate, or why there is none."""
    if not part.equilibrium:
        why = "no equilibrium inside X (a state within 90 % of X held by an action within 90 % of its range)"
        log(f"linear feedback {part.describe()}: {why}")
        return why
    cands = feedback_candidates(part.scaled, margin, seed=seed, deadline=deadline,
                                progress=lambda msg: log(f"linear feedback {part.describe()}: {msg}"),
                                search_trials=SEARCH_TRIALS)
    if not cands:
        timed = time.monotonic() >= deadline
        modes = [] if timed else unreachable_modes(*linearisation(part.scaled, *part.operating))
        if timed:
            why = "its time share ran out before the set construction converged (a slowly contracting closed loop)"
        elif not modes:
            at = ", ".join(f"{nm} {v:+.2f}" for nm, v in zip(part.names, part.operating[0]))
            why = (f"every LQR gain tried gave an empty set about the equilibrium at {at} (normalised: -1 and +1 "
                   "are the bounds of X); the noise and the linearisation error, bounded over boxes around it, "
                   "outgrow what the closed loop contracts")
        else:
            lam, v = modes[0]
            which = " + ".join(nm for nm, vi in zip(part.names, v) if vi >= 0.3) or part.names[int(np.argmax(v))]
            why = (f"no stabilising gain: at the equilibrium no action moves {which} to first order (a mode with "
                   f"|eigenvalue| {abs(lam):.3g} they do not reach), so the noise there is held, if at all, only "
                   "through nonlinear terms")
        log(f"linear feedback {part.describe()}: {why}")
        return why
    best = max(cands, key=lambda c: c.volume_fraction)
    q = ", ".join(f"{v:.3g}" for v in best.state_weight)
    log(f"linear feedback {part.describe()}: {100 * best.volume_fraction:.1f} % of X "
        f"({len(best.b)} facets, action weight {best.action_weight:.3g}, state weights {q}, {best.steps} steps)")
    return _Candidate("linear feedback", best.A, best.b, best.volume_fraction,
                      {"action_weight": float(best.action_weight),
                       "state_weight": [float(v) for v in best.state_weight], "steps": best.steps, "margin": margin})


def _volume(P: HPolytope, seed: int) -> dict:
    est = P.volume_estimate(n_samples=400_000, rng=np.random.default_rng(seed)) if P.dim > 3 else P.volume_estimate()
    return {"value": float(est.value), "method": est.method, "stderr": float(est.stderr)}


def compute_certified_invariant(system, out: Path, facets: int | None = None, time_budget: float = 1200.0,
                                seed: int = 0, margin: float | None = None, progress: bool = True,
                                command: str | None = None, workers: int | None = None) -> Outcome:
    """Run the loop of the module docstring; write ``out`` only when certified.

    :param margin: shrinking margin in normalised units (default :func:`default_margin` per part).
    :param command: the command line recorded in the set file (default: rebuilt from the options).
    """
    t0 = time.monotonic()
    deadline = t0 + time_budget
    log = _Log(progress, system.name)
    plan = plan_for(system)
    if len(plan) > 1:
        log("split into " + " x ".join(p.describe() for p in plan) + " (coupling terms as bounded noise)")
    margins, lin_margins = _initial_margins(plan, system.n, margin)
    counterexamples: list[np.ndarray] = []
    last = "no candidate"
    stuck: PlanPart | None = None  # the part no route gave a candidate for
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        chosen: list[_Candidate] = []
        for k, part in enumerate(plan):
            extra = np.array(counterexamples)[:, list(part.idx)] if counterexamples else None
            extra_z = part.scaled.to_z(extra) if extra is not None else None
            cands, why = [], []
            lin_deadline = time.monotonic() + min(LINEAR_CAP_S, LINEAR_SHARE * (deadline - time.monotonic()))
            lin = _linear(part, lin_margins[k], seed, lin_deadline, log)
            if isinstance(lin, str):
                why.append(f"linear feedback: {lin}")
            else:
                cands.append(lin)
            if part.scaled.n <= SHRINK_MAX_DIM or not cands:
                sub = deadline if not cands else time.monotonic() + min(SHRINK_CAP_S,
                                                                         SHRINK_SHARE * (deadline - time.monotonic()))
                sh = _shrink(part, facets, margins[k], seed, sub, log, extra_z, None, None, system.n)
                if isinstance(sh, str):
                    why.append(f"template shrinking: {sh}")
                else:
                    cands.append(sh)
            if not cands:
                last = f"no candidate for {part.describe()} ({'; '.join(why)})"
                stuck = part
                break
            chosen.append(max(cands, key=lambda c: c.volume_fraction))
        if len(chosen) < len(plan):
            if len(plan) > 1 and time.monotonic() < deadline:
                # the coupling bounded over all of X can take the whole action authority of a part
                # (a rigid body's gyroscopic terms): a split that leaves a part without a candidate
                # is dropped, and the whole system is tried as one part
                log(f"{last}; the split is dropped, the whole system is tried as one part")
                plan = whole_plan(system)
                margins, lin_margins = _initial_margins(plan, system.n, margin)
                stuck = None
                continue
            break
        rows = []
        for part, cand in zip(plan, chosen):
            A_x, b_x = part.scaled.to_state(cand.A, cand.b)
            rows.append((part.idx, A_x, b_x))
        A, b = embed(system.n, rows)
        P = HPolytope(A, b).remove_redundant()
        vol = _volume(P, seed)
        log(f"certifying a candidate of {P.A.shape[0]} facets, volume {vol['value']:.4g} "
            f"({100 * vol['value'] / float(np.prod(system.constraint_hi - system.constraint_lo)):.1f} % of X)")
        opts = (f" --facets {facets}" if facets else "") + (f" --margin {margin:g}" if margin is not None else "") \
            + (f" --seed {seed}" if seed else "")
        cmd = command or f"reachsafe compute-invariant {model_file_of(system) or system.name}{opts}"
        sf = SetFile.for_system(
            system, P.A, P.b, volume=vol,
            provenance={
                "command": cmd,
                "method": "one route for every system (verification/synthesis/driver.py)",
                "parts": [{"coordinates": list(p.idx), "route": c.route, "volume_fraction": round(c.volume_fraction, 6),
                           "coupling": p.coupling, **c.info} for p, c in zip(plan, chosen)],
                "synthesis_rounds": rounds,
                "synthesis_time_s": round(time.monotonic() - t0, 2),
                "tool_version": __version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            },
        )
        tmpdir = make_workdir(out.parent)  # stale .reachsafe-* folders of killed runs are removed here
        try:
            cand_path = tmpdir / out.name
            sf.save(cand_path)
            left = deadline - time.monotonic()
            # half of what is left, so that an undecided candidate leaves time for a wider-margin one
            share = left if left < 2 * MIN_CERTIFY_S else max(MIN_CERTIFY_S, CERTIFY_SHARE * left)
            result = certify(cand_path, time_budget=max(1.0, share), progress=progress, workers=workers)
            if result.status == "certified":
                # an identical certified set already at `out` stays untouched (clean working tree)
                done = "wrote" if install_certified_set(cand_path, out) else "kept (same A, b and model)"
                final = load_set(out)
                return Outcome(0, f"{done} {out}: {system.name}, {P.A.shape[0]} facets, volume {vol['value']:.4g}"
                                  f" ({vol['method']}), certified in {result.time_s:.1f} s "
                                  f"(total {time.monotonic() - t0:.1f} s)", final, log.lines)
        finally:
            remove_workdir(tmpdir)
        if result.status == "undecided":
            queued = result.stats.get("queued")
            last = (f"certifier undecided after {result.cells} cells proven"
                    + (f", {queued} queued" if queued is not None else "") + f" ({result.message})")
            if deadline - time.monotonic() < MIN_CERTIFY_S:
                break
            log(last + "; margins raised (a thicker margin is easier to prove)")
        else:
            last = f"candidate refuted by the certifier ({result.message})"
            log(last + "; margins raised")
        if result.counterexample is not None:
            counterexamples.append(np.asarray(result.counterexample.x, dtype=np.float64))
        margins = [3.0 * mg for mg in margins]
        lin_margins = [10.0 * mg for mg in lin_margins]
    timed = "undecided" in last or time.monotonic() >= deadline
    hint = ("try a larger --time-budget" if timed
            else "try a smaller --margin or more --facets; or change X: a box too tight leaves no room to brake, one "
                 "too wide (or noise too strong for the action) asks the action to hold states it cannot")
    if stuck is not None and not stuck.equilibrium and not timed:
        # e.g. a unicycle at constant speed: no state stays put, and a convex set must hold whole orbits
        hint = ("no state of X can be held where it is with room to spare in the action, so a convex invariant set "
                "must hold whole orbits; write the model relative to a path or a moving reference (errors that can "
                "be held at 0, as in examples/lane_keeping.py), or " + hint)
    elif "no action moves" in last and not timed:
        hint = ("describe the system relative to a path or reference whose errors the actions reach to first "
                "order (as examples/lane_keeping.py does for a heading), or " + hint)
    head = f"no certified set within {time_budget:.0f} s" if timed else "no certified set"
    return Outcome(3, f"{system.name}: {head}: {last}; nothing written. "
                      f"{hint[0].upper() + hint[1:]}.", None, log.lines)
