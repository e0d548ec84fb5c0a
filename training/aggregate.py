"""Aggregating an experiment's finished runs: per-variant table, JSON and learning-curve plots.

Per variant (system, algorithm, safeguard, gradient variant; the seeds are pooled):

* **steps to 95 %** — per seed, the first evaluation step ``s_k`` with
  ``R(s_k) >= R_first + 0.95 (R_final - R_first)``, where ``R`` is the deterministic evaluation
  return of ``metrics.csv``, ``R_first`` its first and ``R_final`` its last value (95 % of the
  improvement made during training; returns are negative, so "95 % of the return" itself
  would be ill-defined).  A run that did not improve reaches it at its first evaluation.
  The resolution is the run's ``eval_every``.
* **steps to within 5 %** — a second, stricter reading: the first evaluation step with
  ``R(s_k) >= R_final - 0.05 |R_final|``.  The first measure is dominated by a very poor first
  evaluation (e.g. an unsafeguarded run that starts far outside the set); this one is not.
* **final return** — the final evaluation's mean return (uniform noise, ``summary.json``).
* mean +- sample standard deviation (``ddof = 1``; 0 for one seed) over the seeds.
* **audit violations** — failing steps of both final audits (uniform and adversarial noise),
  summed over seeds; **certified** — runs whose both audits certify every step.
* **wall time** per run (training incl. evaluations, from ``summary.json``) and, for SHAC,
  its ratio to the unsafeguarded SHAC plain variant of the same system (means over seeds).

The paper's published numbers (10 seeds) are listed beside ours where the variant exists there
(:data:`PAPER`, from arXiv:2506.01665, Table "steps to 95 % / final return" and its SHAC
wall times).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from reachsafe.safeguard_kinds import DISPLAY_NAMES
from reachsafe.setfile import atomic_write_bytes, atomic_write_text

from .experiment import VARIANTS, Experiment, RunSpec
from .experiment_exec import ResultsStore

__all__ = [
    "PAPER",
    "PAPER_SHAC_WALL_S",
    "steps_to_fraction",
    "steps_to_within",
    "mean_std",
    "VariantStats",
    "aggregate",
    "write_report",
    "fmt_pm",
    "summary_markdown",
    "table_markdown",
]

# (system, algo, safeguard) -> (steps to 95 %, final return); published version, 10 seeds
PAPER: dict[tuple[str, str, str], tuple[float, float]] = {
    ("pendulum", "shac", "none"): (12_800, -8), ("pendulum", "sac", "none"): (8_513, -14),
    ("pendulum", "ppo", "none"): (81_600, -596),
    ("pendulum", "shac", "projection"): (23_360, -8), ("pendulum", "sac", "projection"): (2_504, -1_083),
    ("pendulum", "ppo", "projection"): (80_240, -10),
    ("pendulum", "shac", "raymask"): (27_392, -8), ("pendulum", "sac", "raymask"): (2_504, -424),
    ("pendulum", "ppo", "raymask"): (76_160, -12),
    ("quadrotor", "shac", "none"): (20_364, -157), ("quadrotor", "sac", "none"): (80_628, -1_046),
    ("quadrotor", "ppo", "none"): (80_640, -1_710),
    ("quadrotor", "shac", "projection"): (45_683, -333), ("quadrotor", "sac", "projection"): (110_176, -338),
    ("quadrotor", "ppo", "projection"): (118_720, -402),
    ("quadrotor", "shac", "raymask"): (67_148, -251), ("quadrotor", "sac", "raymask"): (80_128, -377),
    ("quadrotor", "ppo", "raymask"): (127_680, -379),
}
# (system, safeguard) -> SHAC wall time in seconds reported by the paper
PAPER_SHAC_WALL_S: dict[tuple[str, str], float] = {
    ("pendulum", "none"): 56, ("pendulum", "projection"): 285, ("pendulum", "raymask"): 552,
    ("quadrotor", "none"): 60, ("quadrotor", "projection"): 973, ("quadrotor", "raymask"): 12_939,
}
FRACTION = 0.95


def _curve(steps: Sequence[float], returns: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """A learning curve as float arrays; ValueError for empty, mismatched or non-finite input."""
    s, r = np.asarray(steps, float), np.asarray(returns, float)
    if s.ndim != 1 or s.shape != r.shape or len(s) == 0:
        raise ValueError("steps and returns must be non-empty 1-D sequences of equal length")
    if not np.all(np.isfinite(r)):
        raise ValueError("returns must be finite")
    return s, r


def steps_to_fraction(steps: Sequence[float], returns: Sequence[float], fraction: float = FRACTION) -> float:
    """First ``steps[k]`` with ``returns[k] >= R_0 + fraction (R_final - R_0)`` (module docstring).

    :raises ValueError: empty or mismatched input, or a non-finite return.
    """
    s, r = _curve(steps, returns)
    target = r[0] + fraction * (r[-1] - r[0])
    if r[-1] <= r[0]:
        return float(s[0])
    return float(s[np.flatnonzero(r >= target)[0]])


def steps_to_within(steps: Sequence[float], returns: Sequence[float], rel: float = 1 - FRACTION) -> float:
    """First ``steps[k]`` with ``returns[k] >= R_final - rel |R_final|`` (module docstring).

    :raises ValueError: empty or mismatched input, or a non-finite return.
    """
    s, r = _curve(steps, returns)
    return float(s[np.flatnonzero(r >= r[-1] - rel * abs(r[-1]))[0]])


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof = 1``; 0.0 for a single value)."""
    v = np.asarray(values, float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def fmt_pm(m: float, s: float, digits: int = 0) -> str:
    if not math.isfinite(m):
        return "–"
    return f"{m:,.{digits}f} ± {s:,.{digits}f}"


@dataclass
class VariantStats:
    """Aggregated figures of one variant over its finished seeds."""

    group: str
    system: str
    algo: str
    safeguard: str
    variant: str
    regularize: float
    seeds_done: list[int]
    seeds_planned: int
    steps95: tuple[float, float]
    steps_within5: tuple[float, float]
    final_return: tuple[float, float]
    final_return_adversarial: tuple[float, float]
    wall_time_s: tuple[float, float]
    audit_violations: int
    audit_certified: int
    steps_budget: int
    wall_ratio_vs_shac_none: Optional[float] = None
    paper: Optional[tuple[float, float]] = None
    paper_wall_s: Optional[float] = None
    curve_steps: list[float] = field(default_factory=list)
    curve_mean: list[float] = field(default_factory=list)
    curve_std: list[float] = field(default_factory=list)
    curve_min: list[float] = field(default_factory=list)  # per step, over seeds: the band is clipped to these
    curve_max: list[float] = field(default_factory=list)
    curve_seeds: list[list[float]] = field(default_factory=list)  # per seed (seeds_done order), at curve_steps

    @property
    def label(self) -> str:
        v = {"plain": "", "passthrough": " +passthrough", "regularize": f" +reg {self.regularize:g}",
             "both": f" +passthrough +reg {self.regularize:g}"}[self.variant]
        return f"{self.safeguard}{v}"


def _read_metrics(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh)]
    s = np.array([float(r["env_steps"]) for r in rows])
    r = np.array([float(r["eval_return_mean"]) for r in rows])
    return s, r


def aggregate(exp: Experiment) -> list[VariantStats]:
    """Statistics of every variant of the grid with at least one finished run.

    Ordered by system (as in the file), algorithm, safeguard, variant.
    """

    store = ResultsStore(exp)
    groups: dict[str, list[RunSpec]] = {}
    for spec in exp.runs:
        groups.setdefault(spec.group, []).append(spec)
    out: list[VariantStats] = []
    for group, specs in groups.items():
        recs = [(sp, store.record(sp)) for sp in specs]
        done = [(sp, r) for sp, r in recs if r is not None]
        if not done:
            continue
        s95, s5, finals, finals_adv, walls, curves = [], [], [], [], [], []
        for sp, rec in done:
            steps, rets = _read_metrics(store.run_path(sp.run_id) / "metrics.csv")
            s95.append(steps_to_fraction(steps, rets))
            s5.append(steps_to_within(steps, rets))
            finals.append(rec["return_uniform"])
            finals_adv.append(rec["return_adversarial"])
            walls.append(rec["wall_time_s"])
            curves.append((steps, rets))
        common = sorted(set.intersection(*(set(c[0].tolist()) for c in curves)))
        mat = np.array([[r[list(s).index(x)] for x in common] for s, r in curves]) if common else np.zeros((0, 0))
        sp0 = specs[0]
        cfg = json.loads((store.run_path(done[0][0].run_id) / "config.json").read_text())
        vs = VariantStats(
            group=group,
            system=sp0.system,
            algo=sp0.algo,
            safeguard=sp0.safeguard,
            variant=sp0.variant,
            regularize=sp0.regularize,
            seeds_done=[sp.seed for sp, _ in done],
            seeds_planned=len(specs),
            steps95=mean_std(s95),
            steps_within5=mean_std(s5),
            final_return=mean_std(finals),
            final_return_adversarial=mean_std(finals_adv),
            wall_time_s=mean_std(walls),
            audit_violations=sum(int(r["audit_violations"]) for _, r in done),
            audit_certified=sum(bool(r["audit_certified"]) for _, r in done),
            steps_budget=int(cfg["steps"]),
            paper=PAPER.get((sp0.system, sp0.algo, sp0.safeguard)) if sp0.variant == "plain" else None,
            paper_wall_s=PAPER_SHAC_WALL_S.get((sp0.system, sp0.safeguard))
            if sp0.algo == "shac" and sp0.variant == "plain"
            else None,
            curve_steps=list(common),
            curve_mean=mat.mean(0).tolist() if mat.size else [],
            curve_std=(mat.std(0, ddof=1) if len(mat) > 1 else np.zeros(len(common))).tolist() if mat.size else [],
            curve_min=mat.min(0).tolist() if mat.size else [],
            curve_max=mat.max(0).tolist() if mat.size else [],
            curve_seeds=mat.tolist() if mat.size else [],
        )
        out.append(vs)
    from .runner import ALGOS, SAFEGUARDS  # lazy: torch (runner); aggregating needs none

    sys_order = list(exp.systems)
    out.sort(key=lambda v: (sys_order.index(v.system) if v.system in sys_order else len(sys_order),
                            ALGOS.index(v.algo), SAFEGUARDS.index(v.safeguard), VARIANTS.index(v.variant),
                            v.regularize))
    base = {
        v.system: v.wall_time_s[0] for v in out if v.algo == "shac" and v.safeguard == "none" and v.variant == "plain"
    }
    for v in out:
        if v.algo == "shac" and v.system in base and base[v.system] > 0:
            v.wall_ratio_vs_shac_none = v.wall_time_s[0] / base[v.system]
    return out


# ----------------------------------------------------------------------------- report files
HEADER = [
    "system",
    "algo",
    "safeguard / variant",
    "seeds",
    "steps to 95 %",
    "steps to within 5 %",
    "final return",
    "final return (adv.)",
    "paper: steps to 95 % / return",
    "audit violations",
    "audit-certified runs",
    "wall time / run [s]",
    "wall vs SHAC none",
    "paper SHAC wall [s]",
]


def _row(v: VariantStats) -> list[str]:
    seeds = f"{len(v.seeds_done)}/{v.seeds_planned}"
    return [
        v.system,
        v.algo.upper(),
        v.label,
        seeds,
        fmt_pm(*v.steps95),
        fmt_pm(*v.steps_within5),
        fmt_pm(*v.final_return, digits=2),
        fmt_pm(*v.final_return_adversarial, digits=2),
        f"{v.paper[0]:,.0f} / {v.paper[1]:,.0f}" if v.paper else "–",
        str(v.audit_violations),
        f"{v.audit_certified}/{len(v.seeds_done)}",
        fmt_pm(*v.wall_time_s),
        f"{v.wall_ratio_vs_shac_none:.2f}x" if v.wall_ratio_vs_shac_none is not None else "–",
        f"{v.paper_wall_s:,.0f}" if v.paper_wall_s is not None else "–",
    ]


def table_markdown(stats: list[VariantStats]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(_row(v)) + " |" for v in stats]
    return "\n".join(lines) + "\n"


SAFEGUARD_NAMES = DISPLAY_NAMES  # kind -> display name, a live view of reachsafe.safeguard_kinds


def summary_markdown(stats: list[VariantStats]) -> str:
    """The paper's table layout: one row per (system, safeguard), one column per algorithm.

    Only the plain variants (no passthrough, no regulariser), as in the paper. A cell is
    ``final return mean ± std (steps to 95 %) [seeds done/planned]``; the last column gives
    the paper's final returns in the same algorithm order.
    """
    from .runner import ALGOS  # lazy: torch (runner); aggregating needs none

    plain = [v for v in stats if v.variant == "plain"]
    algos = [a for a in ALGOS if any(v.algo == a for v in plain)]
    rows: dict[tuple[str, str], dict[str, VariantStats]] = {}
    for v in plain:
        rows.setdefault((v.system, v.safeguard), {})[v.algo] = v
    head = ["system", "safeguard", *(a.upper() for a in algos),
            "paper " + " / ".join(a.upper() for a in algos) + " return"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (system, safeguard), by_algo in rows.items():
        cells = []
        for a in algos:
            v = by_algo.get(a)
            cells.append("–" if v is None else f"{fmt_pm(*v.final_return, digits=2)} ({v.steps95[0]:,.0f}) "
                         f"[{len(v.seeds_done)}/{v.seeds_planned}]")
        paper = [PAPER.get((system, a, safeguard)) for a in algos]
        cells.append(" / ".join(f"{p[1]:,.0f}" for p in paper) if all(paper) else "–")
        lines.append("| " + " | ".join([system, SAFEGUARD_NAMES.get(safeguard, safeguard), *cells]) + " |")
    return "\n".join(lines) + "\n"


def table_csv(stats: list[VariantStats]) -> str:
    cols = [
        "group",
        "system",
        "algo",
        "safeguard",
        "variant",
        "regularize",
        "seeds_done",
        "seeds_planned",
        "steps_budget",
        "steps95_mean",
        "steps95_std",
        "steps_within5_mean",
        "steps_within5_std",
        "final_return_mean",
        "final_return_std",
        "final_return_adv_mean",
        "final_return_adv_std",
        "paper_steps95",
        "paper_final_return",
        "audit_violations",
        "audit_certified_runs",
        "wall_time_s_mean",
        "wall_time_s_std",
        "wall_ratio_vs_shac_none",
        "paper_shac_wall_s",
    ]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for v in stats:
        w.writerow(
            [
                v.group,
                v.system,
                v.algo,
                v.safeguard,
                v.variant,
                v.regularize,
                len(v.seeds_done),
                v.seeds_planned,
                v.steps_budget,
                *v.steps95,
                *v.steps_within5,
                *v.final_return,
                *v.final_return_adversarial,
                *(v.paper if v.paper else ("", "")),
                v.audit_violations,
                v.audit_certified,
                *v.wall_time_s,
                "" if v.wall_ratio_vs_shac_none is None else f"{v.wall_ratio_vs_shac_none:.4f}",
                "" if v.paper_wall_s is None else v.paper_wall_s,
            ]
        )
    return buf.getvalue()


def _plot(series: list[VariantStats], title: str, seeds: bool = False) -> bytes:
    """Learning curves: per variant the mean over seeds with the ± std band (clipped to the
    seeds' range), or with ``seeds`` the mean and every seed as a thin line (shows a single
    failed seed that a band smears out)."""
    import matplotlib  # lazy: matplotlib only for figures

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib only for figures

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = plt.get_cmap("tab10").colors
    for i, v in enumerate(series):
        s, m, sd = np.array(v.curve_steps), np.array(v.curve_mean), np.array(v.curve_std)
        if not len(s):
            continue
        # ten colours, then the same colours dashed, dotted: up to 30 distinguishable variants
        line, = ax.plot(s, m, ("-", "--", ":")[(i // len(colors)) % 3], color=colors[i % len(colors)],
                        marker="." if len(s) < 30 else None,
                        label=f"{v.label} ({len(v.seeds_done)} seed{'s' if len(v.seeds_done) != 1 else ''})")
        if seeds:
            for curve in v.curve_seeds:
                ax.plot(s, curve, "-", color=line.get_color(), alpha=0.35, linewidth=0.8)
        else:
            # mean ± std, clipped to the seeds' range: with few seeds the std band would otherwise
            # reach returns no seed attained (e.g. positive returns of an all-negative reward)
            lo, hi = np.maximum(m - sd, np.array(v.curve_min)), np.minimum(m + sd, np.array(v.curve_max))
            ax.fill_between(s, lo, hi, alpha=0.2, color=line.get_color())
    spread = "mean (thick) and each seed (thin)" if seeds else "mean ± std, within the seeds' range"
    lows = [min(v.curve_mean) for v in series if v.curve_mean]
    highs = [max(abs(x) for x in v.curve_mean[-3:]) for v in series if v.curve_mean]
    if lows and highs and -min(lows) > 20 * max(1.0, min(highs)):  # early returns dwarf the final ones
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel(f"evaluation return (symlog)\n{spread}")
    else:
        ax.set_ylabel(f"evaluation return\n{spread}")
    ax.set_xlabel("environment steps")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def figure_groups(stats: list[VariantStats]) -> list[tuple[str, str, list[VariantStats], bool]]:
    """The combined learning-curve figures: ``(file stem, title, variants, per-seed lines)``.

    ``SYSTEM-ALGO``: the plain variants (safeguards side by side, the paper's figure, std bands);
    ``SYSTEM-ALGO-SAFEGUARD-variants``: one safeguard with its gradient variants
    (passthrough, regulariser), where the grid has more than the plain one (every seed drawn).
    """
    out: list[tuple[str, str, list[VariantStats], bool]] = []
    by_sa: dict[tuple[str, str], list[VariantStats]] = {}
    for v in stats:
        by_sa.setdefault((v.system, v.algo), []).append(v)
    for (system, algo), series in by_sa.items():
        plain = [v for v in series if v.variant == "plain"]
        if plain:
            out.append((f"{system}-{algo}", f"{system} {algo.upper()}", plain, False))
        by_sg: dict[str, list[VariantStats]] = {}
        for v in series:
            by_sg.setdefault(v.safeguard, []).append(v)
        for sg, variants in by_sg.items():
            if len(variants) > 1:
                out.append((f"{system}-{algo}-{sg}-variants", f"{system} {algo.upper()} {sg}: gradient variants",
                            variants, True))
    return out


def write_report(exp: Experiment, stats: Optional[list[VariantStats]] = None,
                 command: Optional[str] = None) -> dict[str, Path]:
    """Write ``table.md``, ``summary.md``, ``table.csv``, ``aggregate.json`` and ``curves/*.png`` into the results
    folder."""
    stats = aggregate(exp) if stats is None else stats
    d = exp.results_dir
    (d / "curves").mkdir(parents=True, exist_ok=True)
    total = len(exp.runs)
    done = sum(len(v.seeds_done) for v in stats)
    head = (
        f"# {exp.name}: {done} of {total} runs finished"
        + (" (partial)" if done < total else "")
        + "\n\n"
        + (exp.description.strip() + "\n\n" if exp.description else "")
        + "Steps to 95 % of the improvement (and to within 5 % of the final return), final evaluation return "
        "(16 episodes, uniform noise; adversarial noise beside), mean ± std over the finished seeds; "
        "audit violations summed over both final audits and seeds.  Paper: published numbers, 10 seeds.\n\n"
    )
    figures = figure_groups(stats)
    paths = {"table.md": d / "table.md", "summary.md": d / "summary.md", "table.csv": d / "table.csv",
             "aggregate.json": d / "aggregate.json"}
    atomic_write_text(paths["table.md"], head + table_markdown(stats))
    atomic_write_text(paths["summary.md"], (
        f"# {exp.name}: summary ({done} of {total} runs finished)\n\n"
        "Plain variants in the paper's layout: final return mean ± std over seeds (steps to 95 % of the "
        "improvement) [seeds finished/planned]; the paper's final returns (10 seeds) in the last column. "
        "Every variant, with audit and wall-time columns: table.md.\n\n" + summary_markdown(stats)
        + "\n## Learning curves\n\n" + "".join(f"![{title}](curves/{name}.png)\n" for name, title, _, _ in figures)))
    atomic_write_text(paths["table.csv"], table_csv(stats))
    agg = {"experiment": exp.name, "runs_total": total, "runs_finished": done, "fraction": FRACTION,
           "variants": [{k: (list(val) if isinstance(val, tuple) else val) for k, val in vars(v).items()}
                        for v in stats]}
    atomic_write_text(paths["aggregate.json"], json.dumps(agg, indent=1, allow_nan=False) + "\n")
    for v in stats:
        p = d / "curves" / f"{v.group}.png"
        atomic_write_bytes(p, _plot([v], f"{exp.name}: {v.system} {v.algo.upper()} {v.label}", seeds=True))
        paths[f"curves/{v.group}.png"] = p
    for name, title, series, per_seed in figures:
        p = d / "curves" / f"{name}.png"
        atomic_write_bytes(p, _plot(series, f"{exp.name}: {title}", seeds=per_seed))
        paths[f"curves/{name}.png"] = p
    if command:
        cmd_path = d / "commands.txt"
        old = cmd_path.read_text() if cmd_path.exists() else ""
        if command + "\n" not in old:
            atomic_write_text(cmd_path, old + command + "\n")
        paths["commands.txt"] = cmd_path
    return paths
