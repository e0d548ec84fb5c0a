"""Audit reports: the JSON summary and a self-contained HTML page (PNG plots inlined as base64).

Plots (matplotlib, Agg backend):

* **trajectories over the set** — 2-D systems: the polygon of ``P`` (its vertices), the box
  ``X`` and up to 40 trajectories; higher dimensions: projections onto the coordinate pairs of
  :func:`verification.plots.projection_pairs` (quadrotor: px-vx, pz-vz, vx-phi, phi-phi_dot; the projection
  of ``P`` from its zonotope or support-function LPs).  Failing states are red crosses.
* **per-step minimum slack** — for every step ``t`` the minimum over episodes (and the median)
  of the normalised slack of the state in ``P ∩ X`` and of the worst-case successor in ``P``
  (``b_i - A_i (c + B a) - h_W,i`` over ``||A_i||``), symlog scale; below zero is a violation;
  and the largest estimated noise ``max_j |w*_j - w_c| / w_r`` (above 1: outside ``W``).
* **policy vs executed actions** — one scatter per action component; off the diagonal the
  safeguard intervened.
* **intervention rate over time** — fraction of episodes whose executed action differs from the
  policy's at step ``t``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from reachsafe.setfile import atomic_write_text
from reachsafe.sets import HPolytope

from ..plots import _projection as proj
from ..plots import projection_pairs
from .checks import AuditResult

__all__ = ["write_json", "render_html", "write_html", "figures"]

MAX_TRAJ = 40
MAX_SCATTER = 20_000
MAX_HTML_FAILURES = 200


def write_json(result: AuditResult, path: str | Path) -> Path:
    """Write :meth:`AuditResult.to_json` atomically; returns the path."""

    atomic_write_text(path, json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n")
    return Path(path)


# ------------------------------------------------------------------ plots
def _png(fig) -> str:
    import matplotlib.pyplot as plt  # lazy: matplotlib only when a figure is drawn

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _polygon_2d(sf) -> np.ndarray | None:
    """Vertices of a 2-D P in counter-clockwise order (None if enumeration fails)."""

    try:
        V = np.asarray(HPolytope(sf.A, sf.b).vertices(), float)
    except Exception:  # plotting only: a degenerate polytope just loses its outline
        return None
    if len(V) < 3:
        return None
    ctr = V.mean(axis=0)
    return V[np.argsort(np.arctan2(V[:, 1] - ctr[1], V[:, 0] - ctr[0]))]


def _projection(sf, i: int, j: int) -> np.ndarray | None:
    """Projection of P onto (i, j): from its zonotope, or LPs when P has few facets."""
    if not sf.zonotope and sf.A.shape[0] > 5000:
        return None

    try:
        return proj(sf, i, j)
    except Exception:  # plotting only
        return None


def _episodes_to_draw(result: AuditResult) -> np.ndarray:
    """Episodes with failures first, then evenly spread ones, at most MAX_TRAJ."""
    E = result.rollouts.episodes
    bad = np.flatnonzero(~result.states.ok.all(axis=1) | ~result.actions.ok.all(axis=1))
    rest = np.setdiff1d(np.linspace(0, E - 1, min(E, MAX_TRAJ)).astype(int), bad)
    return np.concatenate([bad[: MAX_TRAJ // 2], rest])[:MAX_TRAJ]


def fig_trajectories(result: AuditResult) -> str:
    import matplotlib.pyplot as plt  # lazy: matplotlib only when a figure is drawn
    from matplotlib.patches import Polygon, Rectangle

    sf, ro = result.setfile, result.rollouts
    n = ro.states.shape[2]
    names = list(sf.state_names or [f"x{k}" for k in range(n)])
    pairs = projection_pairs(sf.system, n)
    ncol = 2 if len(pairs) == 4 else len(pairs)
    nrow = -(-len(pairs) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.4 * ncol, 4.6 * nrow), squeeze=False)
    axes = [list(axes.ravel())]
    lo, hi = np.asarray(sf.constraints["lo"]), np.asarray(sf.constraints["hi"])
    eps = _episodes_to_draw(result)
    bad_e, bad_t = np.nonzero(~result.states.ok)
    step_e, step_t = np.nonzero(~result.actions.ok | ~result.transitions.ok)
    for ax, (i, j) in zip(axes[0], pairs):
        ax.add_patch(Rectangle((lo[i], lo[j]), hi[i] - lo[i], hi[j] - lo[j], fill=False, ls="--", lw=1.2,
                               ec="black", label="constraint box X"))
        V = _polygon_2d(sf) if n == 2 else _projection(sf, i, j)
        if V is not None:
            ax.add_patch(Polygon(V, closed=True, alpha=0.25, fc="tab:blue", ec="tab:blue", lw=1.5,
                                 label="invariant set P" if n == 2 else "P (projection)"))
        for k, e in enumerate(eps):
            ax.plot(
                ro.states[e, :, i],
                ro.states[e, :, j],
                lw=0.7,
                alpha=0.6,
                color=plt.cm.viridis(k / max(1, len(eps) - 1)),
            )
        ax.plot(ro.states[eps, 0, i], ro.states[eps, 0, j], "k.", ms=4, label="initial states")
        if bad_e.size:
            ax.plot(ro.states[bad_e, bad_t, i], ro.states[bad_e, bad_t, j], "rx", ms=7, mew=2,
                    label=f"failing states ({bad_e.size})")
        if step_e.size:
            ax.plot(ro.states[step_e, step_t, i], ro.states[step_e, step_t, j], "o", mfc="none", mec="darkorange",
                    ms=7, mew=1.5, label=f"x_t of failing actions/transitions ({step_e.size})")
        # 2-D: the whole box X; projections: zoom to P and the data (X may be far larger)
        xs = np.r_[ro.states[eps, :, i].ravel(), [lo[i], hi[i]] if n == 2 or V is None else V[:, 0]]
        ys = np.r_[ro.states[eps, :, j].ravel(), [lo[j], hi[j]] if n == 2 or V is None else V[:, 1]]
        xs, ys = xs[np.isfinite(xs)], ys[np.isfinite(ys)]
        pad_i, pad_j = 0.06 * (np.ptp(xs) + 1e-9), 0.06 * (np.ptp(ys) + 1e-9)
        ax.set_xlim(xs.min() - pad_i, xs.max() + pad_i)
        ax.set_ylim(ys.min() - pad_j, ys.max() + pad_j)
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"{len(eps)} of {ro.episodes} trajectories over the set", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def fig_slack(result: AuditResult) -> str:
    import matplotlib.pyplot as plt  # lazy: matplotlib only when a figure is drawn

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.0))
    panels = ((axes[0], result.states, "state x_t in P ∩ X", "tab:blue"),
              (axes[1], result.actions, "successor of a_t in P (worst-case noise)", "tab:green"))
    for ax, chk, label, col in panels:
        s = np.where(np.isnan(chk.slack), -np.inf, chk.slack)
        t = np.arange(s.shape[1])
        smin = s.min(axis=0)
        finite_min = np.where(np.isfinite(smin), smin, np.nan)
        ax.plot(t, np.median(s, axis=0), color=col, alpha=0.5, lw=1, label="median over episodes")
        ax.plot(t, finite_min, color=col, lw=1.6, label="minimum over episodes")
        bad = np.flatnonzero(~chk.ok.all(axis=0))
        if bad.size:
            ax.plot(bad, np.nan_to_num(finite_min[bad], nan=0.0), "rx", ms=6, mew=1.5,
                    label=f"steps with failures ({bad.size})")
        ax.axhline(0.0, color="red", lw=1, ls="--")
        ax.set_yscale("symlog", linthresh=1e-6)  # tiny positive margins stay visibly above 0
        ax.set_xlabel("step t")
        ax.set_ylabel("normalised slack (symlog)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    ratio = 1.0 - np.where(np.isnan(result.transitions.slack), -np.inf, result.transitions.slack)
    t = np.arange(ratio.shape[1])
    ax.plot(t, np.where(np.isfinite(ratio.max(axis=0)), ratio.max(axis=0), np.nan), color="tab:brown", lw=1.4,
            label="maximum over episodes")
    bad = np.flatnonzero(~result.transitions.ok.all(axis=0))
    if bad.size:
        ax.plot(bad, np.nan_to_num(ratio.max(axis=0)[bad], posinf=1.0), "rx", ms=6, mew=1.5,
                label=f"unexplained transitions ({bad.size} steps)")
    ax.axhline(1.0, color="red", lw=1, ls="--", label="edge of W")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("step t")
    ax.set_ylabel("max_j |w*_j - w_c| / w_r")
    ax.set_title("estimated noise relative to W (above 1: outside W)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("per-step slack: checks 2, 3 (below 0: violation) and noise use in check 4", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def fig_actions(result: AuditResult) -> str:
    import matplotlib.pyplot as plt  # lazy: matplotlib only when a figure is drawn

    ro = result.rollouts
    m = ro.actions.shape[2]
    P = ro.policy_actions.reshape(-1, m)
    A = ro.actions.reshape(-1, m)
    idx = np.random.default_rng(0).choice(len(A), size=min(len(A), MAX_SCATTER), replace=False)
    fig, axes = plt.subplots(1, m, figsize=(4.6 * m, 4.3), squeeze=False)
    for j, ax in enumerate(axes[0]):
        ax.plot(P[idx, j], A[idx, j], ".", ms=2, alpha=0.35, color="tab:purple")
        lim = [min(-1.0, np.nanmin(P[idx, j])), max(1.0, np.nanmax(P[idx, j]))]
        ax.plot(lim, lim, "k--", lw=0.8, label="no intervention")
        ax.axhline(-1, color="grey", lw=0.6)
        ax.axhline(1, color="grey", lw=0.6)
        ax.set_xlabel(f"policy action a[{j}]")
        ax.set_ylabel(f"executed action a[{j}]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"policy vs executed actions ({len(idx)} of {len(A)} steps)", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def fig_interventions(result: AuditResult) -> str:
    import matplotlib.pyplot as plt  # lazy: matplotlib only when a figure is drawn

    rate = result.intervened.mean(axis=0)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(np.arange(len(rate)), rate, color="tab:orange", lw=1.4)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step t")
    ax.set_ylabel("fraction of episodes")
    ax.set_title(f"intervention rate over time (overall {result.intervened.mean():.1%})", fontsize=11)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def figures(result: AuditResult) -> dict[str, str]:
    """Base64 PNGs keyed by name (matplotlib Agg)."""
    import matplotlib  # lazy: matplotlib only when a figure is drawn

    matplotlib.use("Agg")
    return {"trajectories": fig_trajectories(result), "slack": fig_slack(result),
            "actions": fig_actions(result), "interventions": fig_interventions(result)}


# ------------------------------------------------------------------ html
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222}
.banner{padding:16px 20px;border-radius:6px;color:#fff;font-size:20px;font-weight:600}
.ok{background:#1b7f3b}.bad{background:#b3261e}
table{border-collapse:collapse;margin:8px 0 18px;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.pass{color:#1b7f3b;font-weight:600}td.fail{color:#b3261e;font-weight:600}
code{font-size:12px}img{max-width:100%;border:1px solid #ddd;margin:6px 0 14px}
h2{margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}.small{color:#666;font-size:12px}
"""


def _e(v: Any) -> str:
    return html.escape(str(v))


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_html(result: AuditResult, figs: dict[str, str] | None = None) -> str:
    """The self-contained HTML report (string)."""
    j = result.to_json()
    figs = figs if figs is not None else figures(result)
    ro, sf = j["rollouts"], j["set"]
    steps = ro["episodes"] * ro["steps"]
    nfail = j["failures"]["total"]
    if result.ok:
        banner = (f"<div class='banner ok'>CERTIFIED SAFE — all {steps:,} steps of {ro['episodes']} episodes pass "
                  "every check against a re-checked certificate</div>")
    elif not result.certificate_ok and result.steps_ok:
        banner = ("<div class='banner bad'>NOT CERTIFIED — every step passes, but the set's certificate or a "
                  "fingerprint check failed (see check 1)</div>")
    else:
        banner = (f"<div class='banner bad'>VIOLATIONS FOUND — {nfail:,} failing items"
                  f"{'' if result.certificate_ok else '; certificate check failed'}</div>")
    rows = []
    cert = j["checks"]["certificate"]
    for it in cert["items"]:
        rows.append(f"<tr><td>1. {_e(it['name'])}</td><td class='{'pass' if it['ok'] else 'fail'}'>"
                    f"{'pass' if it['ok'] else 'FAIL'}</td><td colspan=4>{_e(it['message'])}</td></tr>")
    labels = {"states": "2. states in P and X", "actions": "3. actions in U and S(x)",
              "transitions": "4. transitions explained by the model"}
    for key, lab in labels.items():
        c = j["checks"][key]
        reasons = ", ".join(f"{k}: {v}" for k, v in c["failed_by_reason"].items()) or "—"
        w = c["worst_slack_at"]
        rows.append(f"<tr><td>{lab}</td><td class='{'pass' if c['failed'] == 0 else 'fail'}'>"
                    f"{c['passed']:,} / {c['total']:,}</td><td>{_e(reasons)}</td><td>{_fmt(c['worst_slack'])}"
                    f" <span class='small'>(episode {w['episode']}, step {w['step']})</span></td>"
                    f"<td>{_e(c['tolerance'])}</td></tr>")
    checks = ("<table><tr><th>check</th><th>passed</th><th>failures by reason</th><th>worst slack</th>"
              "<th>tolerance</th></tr>" + "".join(rows) + "</table>")
    fails = j["failures"]["items"][:MAX_HTML_FAILURES]
    if fails:
        frows = "".join(f"<tr><td>{f['episode']}</td><td>{f['step']}</td><td>{_e(f['check'])}</td>"
                        f"<td>{_e(f['reason'])}</td></tr>" for f in fails)
        more = (f"<p class='small'>showing {len(fails)} of {nfail:,} failing items "
                f"(the JSON lists up to {result.max_failures}).</p>")
        failures = ("<h2>Failing steps</h2>" + more + "<table><tr><th>episode</th><th>step</th><th>check</th>"
                    "<th>reason</th></tr>" + frows + "</table>")
    else:
        failures = "<h2>Failing steps</h2><p>None.</p>"
    meta = [
        ("rollouts", ro["path"]),
        ("system", ro["system"]),
        ("episodes x steps", f"{ro['episodes']} x {ro['steps']}"),
        ("noise mode", ro["noise"]),
        ("stored dtype", ro["storage_dtype"]),
        ("mean return", _fmt(ro["mean_return"])),
        ("set file", sf["path"]),
        ("facets", sf["facets"]),
        ("set certified (recorded)", sf["certified"]),
        ("set fingerprint", sf["set_fingerprint"]),
        ("rollouts' set fingerprint", ro["set_fingerprint"]),
        ("model fingerprint (set)", sf["model_fingerprint"]),
        ("rollouts' model fingerprint", ro["model_fingerprint"]),
        (
            "interventions",
            f"{j['interventions']['count']:,} of {j['interventions']['steps']:,} steps "
            f"({j['interventions']['rate']:.1%})",
        ),
        ("audit time", f"{j['time_s']:.2f} s"),
        ("tool", j["tool"]),
    ]
    meta_t = (
        "<table>" + "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>" for k, v in meta) + "</table>"
    )
    tol = ("<p class='small'>Checks 2 and 3 pass only when proven for the exact real numbers: the model "
           "functions c, B, E are enclosed by outward-rounded interval arithmetic at the stored states and the "
           "facet products carry an a-priori floating-point error bound; a step within that bound of the "
           f"boundary fails as 'not provable within rounding'. Tolerance: {_e(j['tolerances']['description'])}. "
           "Check 4 accepts |x+ - c - B a - E w| up to "
           f"{j['tolerances']['transition_rtol']:.3g} times the magnitude of the simulator's terms "
           f"(stored dtype {_e(j['tolerances']['storage_dtype'])}) for some w in W. Slack: normalised distance "
           "to the violated facet (checks 2, 3); for check 4 the unused fraction of the noise box.</p>")
    imgs = "".join(f"<h2>{_e(title)}</h2><img alt='{_e(title)}' src='data:image/png;base64,{figs[key]}'>"
                   for key, title in (("trajectories", "Trajectories over the set"),
                                      ("slack", "Per-step minimum slack"),
                                      ("actions", "Policy vs executed actions"),
                                      ("interventions", "Intervention rate over time")) if key in figs)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>reachsafe audit — "
            f"{_e(ro['system'])}</title><style>{_CSS}</style></head><body>"
            f"<h1>Safety audit: {_e(ro['system'])}</h1>{banner}<h2>Checks</h2>{checks}{tol}{failures}"
            f"{imgs}<h2>Inputs</h2>{meta_t}</body></html>\n")


def write_html(result: AuditResult, path: str | Path) -> Path:
    """Render and write the HTML report atomically; returns the path."""

    atomic_write_text(path, render_html(result))
    return Path(path)
