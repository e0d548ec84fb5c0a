"""docs/extending.md, checked: a safeguard kind is one class plus one registry line.

The class is the one in the walk-through (its first Python block, executed here).  Registered
for one test, it must appear in every list of kinds the walk-through names (the factory, the
``reachsafe train --safeguard`` choices, the run configuration, the experiment-file validation,
the result tables' display names, the ``reachsafe bench training`` defaults), work as a
safeguard, and be gone from all of them once unregistered.  The registry's own checks
(names, display names, abstract or mismatched classes) are tested here too.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

import training.bench
from reachsafe import UserError, load_set, sample_states
from reachsafe.cli import build_parser
from reachsafe.safeguard_kinds import (DISPLAY_NAMES, KIND_NAMES, SAFEGUARD_KINDS, SHIELDING_KIND_NAMES,
                                       SafeguardKind)
from reachsafe.safeguards import KINDS, Safeguard, make_safeguard
from training.aggregate import SAFEGUARD_NAMES
from training.experiment import load_experiment
from training.runner import SAFEGUARDS, make_config

from .conftest import DATA, PUBLISHED, ROOT

DOC = ROOT / "docs" / "extending.md"


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def _doc_class() -> type:
    """``ClipSafeguard`` as docs/extending.md defines it (its first Python block)."""
    namespace: dict = {"__name__": __name__}
    exec(compile(_python_blocks(DOC)[0], str(DOC), "exec"), namespace)
    return namespace["ClipSafeguard"]


ClipSafeguard = _doc_class()  # module attribute: the registry loads it by "tests.test_extending:ClipSafeguard"


@pytest.fixture
def clip_kind() -> Iterator[SafeguardKind]:
    """The walk-through's kind, registered as ``"module:Class"`` like a built-in, removed afterwards."""
    entry = SAFEGUARD_KINDS.register(SafeguardKind("clip", "clipping", f"{__name__}:ClipSafeguard"))
    try:
        yield entry
    finally:
        SAFEGUARD_KINDS.unregister("clip")


def _experiment(tmp_path: Path, safeguard: str) -> Path:
    p = tmp_path / "clip.toml"
    p.write_text(f"""
[experiment]
name = "clip"
[systems.pendulum]
set = "{DATA / 'pendulum.json'}"
init_set = "{PUBLISHED / 'pendulum.json'}"
steps = 512
[[grid]]
systems = ["pendulum"]
algos = ["shac"]
safeguards = ["none", "{safeguard}"]
seeds = 1
""")
    return p


def _train_choices() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices["train"]._actions if "--safeguard" in a.option_strings)
    return list(action.choices)


def _bench_default() -> list[str]:
    p = argparse.ArgumentParser()
    training.bench.add_arguments(p)
    return p.parse_args([]).safeguards.split(",")


def test_the_walkthrough_doc_names_the_registry_and_its_lists():
    text = DOC.read_text(encoding="utf-8")
    assert (
        'SAFEGUARD_KINDS.register(SafeguardKind("clip", "clipping", "reachsafe.safeguards.clip:ClipSafeguard"))' in text
    )
    for name in ("KIND_NAMES", "SHIELDING_KIND_NAMES", "DISPLAY_NAMES", "ConvexSet", "as_hpolytope",
                 "_conformance_cases", "test_representation_conformance"):
        assert name in text


def test_a_registered_kind_is_in_every_derived_list(clip_kind, tmp_path, capsys):
    # the registry and its views
    assert list(KIND_NAMES)[-1] == "clip" and list(SHIELDING_KIND_NAMES)[-1] == "clip"
    assert DISPLAY_NAMES["clip"] == "clipping" and KINDS["clip"] is ClipSafeguard
    # reachsafe train --safeguard
    assert _train_choices() == list(KIND_NAMES)
    args = build_parser().parse_args(
        ["train", "pendulum", "--safeguard", "clip", "--seed", "0", "--out", str(tmp_path)]
    )
    assert args.safeguard == "clip"
    # training.runner: the list, a validated configuration, the hint of the "needs a safeguard" error
    assert "clip" in SAFEGUARDS and SAFEGUARDS.index("clip") == len(SAFEGUARDS) - 1
    cfg, _ = make_config("pendulum", "shac", "clip", set_path=str(DATA / "pendulum.json"), steps=512)
    assert cfg.safeguard == "clip"
    with pytest.raises(UserError, match=r"--passthrough needs a safeguard; add --safeguard projection\|raymask\|"
                                        r"raymask-tanh\|clip"):
        make_config("pendulum", "shac", "none", set_path=str(DATA / "pendulum.json"), passthrough=True)
    # training.aggregate's display names
    assert SAFEGUARD_NAMES.get("clip", "clip") == "clipping"
    # reachsafe bench training's default
    assert _bench_default()[-1] == "clip"
    # experiment files
    exp = load_experiment(_experiment(tmp_path, "clip"))
    assert [s.run_id for s in exp.runs] == ["pendulum-shac-none-s0", "pendulum-shac-clip-s0"]


def test_the_walkthrough_kind_is_a_working_safeguard(clip_kind):
    sf = load_set(DATA / "pendulum.json")
    sg = make_safeguard("clip", "pendulum", sf)
    assert isinstance(sg, ClipSafeguard) and isinstance(sg, Safeguard)
    x = sample_states(sf, 512, rng=0, dtype=torch.float64)
    a = torch.tensor(np.random.default_rng(1).uniform(-3.0, 3.0, (512, 1)), requires_grad=True)
    out, info = sg(x, a, return_info=True)
    lo, hi = float(sg.a_lo), float(sg.a_hi)
    assert info.n_unsafe == 0 and info.intervened.any() and ((out >= lo) & (out <= hi)).all()
    # every returned action is verified safe: the unsafeguarded baseline's float64 check counts none
    assert make_safeguard("none", "pendulum", sf)(x, out.detach(), return_info=True)[1].n_unsafe == 0
    out.sum().backward()
    assert torch.isfinite(a.grad).all()


def test_an_unregistered_kind_is_gone_from_every_list(tmp_path, capsys):
    SAFEGUARD_KINDS.register(SafeguardKind("clip", "clipping", ClipSafeguard))
    SAFEGUARD_KINDS.unregister("clip")
    assert "clip" not in KIND_NAMES and "clip" not in SAFEGUARDS and "clip" not in KINDS
    assert "clip" not in _train_choices() and "clip" not in _bench_default() and "clip" not in SAFEGUARD_NAMES
    with pytest.raises(UserError, match="unknown safeguard kind 'clip'; choose one of none, projection, raymask, "
                                        "raymask-tanh$"):
        make_safeguard("clip", "pendulum", DATA / "pendulum.json")
    with pytest.raises(UserError, match="unknown safeguard 'clip'"):
        load_experiment(_experiment(tmp_path, "clip"))


def test_the_builtin_kinds_load_and_agree_with_their_entries():
    assert list(KIND_NAMES) == ["none", "projection", "raymask", "raymask-tanh"]
    assert list(SHIELDING_KIND_NAMES) == ["projection", "raymask", "raymask-tanh"]
    assert dict(DISPLAY_NAMES) == {"none": "none", "projection": "projection", "raymask": "ray mask",
                                   "raymask-tanh": "tanh ray mask"}
    for name, entry in SAFEGUARD_KINDS.items():
        cls = entry.load()
        assert KINDS[name] is cls and cls.kind == name and cls.shields == entry.shields


def test_the_registry_refuses_bad_entries_with_one_line():
    class NoMap(Safeguard):
        kind = "nomap"

    class Mislabelled(ClipSafeguard):
        pass  # kind "clip" inherited

    cases = [
        (lambda: SafeguardKind("Clip Mask", "clip mask", ClipSafeguard), ValueError, "lower-case letters"),
        (lambda: SafeguardKind("clip", " ", ClipSafeguard), ValueError, "needs a display name"),
        (lambda: SafeguardKind("clip", "clipping", "not a path"), ValueError, "'module:Class'"),
        (
            lambda: SAFEGUARD_KINDS.register(SafeguardKind("raymask", "another", ClipSafeguard)),
            ValueError,
            "'raymask' is already registered",
        ),
        (
            lambda: SAFEGUARD_KINDS.register(SafeguardKind("clip", "ray mask", ClipSafeguard)),
            ValueError,
            "'ray mask' is taken by safeguard kind 'raymask'",
        ),
        (
            lambda: SAFEGUARD_KINDS.register(SafeguardKind("nomap", "no map", NoMap)),
            TypeError,
            "does not implement _map",
        ),
        (
            lambda: SAFEGUARD_KINDS.register(SafeguardKind("clip2", "clip 2", Mislabelled)),
            TypeError,
            "has kind='clip', shields=True, its registry entry name='clip2'",
        ),
        (
            lambda: SAFEGUARD_KINDS.register(SafeguardKind("clip", "clipping", ClipSafeguard, shields=False)),
            TypeError,
            "make them agree",
        ),
        (
            lambda: SAFEGUARD_KINDS.register(SafeguardKind("clip", "clipping", dict)),
            TypeError,
            "is not a subclass of Safeguard",
        ),
    ]
    for make, exc_type, msg in cases:
        with pytest.raises(exc_type, match=re.escape(msg)) as exc:
            make()
        assert "\n" not in str(exc.value)
    assert list(KIND_NAMES) == ["none", "projection", "raymask", "raymask-tanh"]  # nothing half-registered
