"""Versions and identities agree: pyproject.toml, juliapkg.json, Project.toml, CondaPkg.toml."""

from __future__ import annotations

import json
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from tests.julia_helpers import BRIDGE, REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
JULIAPKG = json.loads((REPO / "pydispatch" / "juliapkg.json").read_text())
PROJECT = tomllib.loads((BRIDGE / "Project.toml").read_text())
CONDAPKG = tomllib.loads((BRIDGE / "CondaPkg.toml").read_text())
PYTHONCALL_UUID = "6099a3de-0909-46bc-b1f4-468b9a2dfc0d"


def _juliacall_pin() -> str:
    (pin,) = [d for d in PYPROJECT["project"]["optional-dependencies"]["julia"] if "juliacall" in d]
    match = re.fullmatch(r"juliacall\s*==\s*([\d.]+)", pin)
    assert match, f"pin juliacall exactly (PythonCall must match it): {pin!r}"
    return match.group(1)


def test_dispatchbridge_identity_agrees() -> None:
    entry = JULIAPKG["packages"]["DispatchBridge"]
    assert entry["uuid"] == PROJECT["uuid"]
    assert PROJECT["name"] == "DispatchBridge"
    # A checkout/editable install: the path is relative to the JSON file.
    assert (REPO / "pydispatch" / entry["path"]).resolve() == BRIDGE.resolve()
    assert entry["dev"] is True


def test_versions_move_in_lock_step() -> None:
    version = PYPROJECT["project"]["version"]
    assert PROJECT["version"] == version
    assert CONDAPKG["pip"]["deps"][PYPROJECT["project"]["name"]] == f"=={version}"
    bridge_src = (BRIDGE / "src" / "DispatchBridge.jl").read_text()
    assert f'const PYDISPATCH_VERSION = "{version}"' in bridge_src
    import pydispatch

    assert pydispatch.__version__ == version


def test_pythoncall_matches_the_juliacall_pin() -> None:
    pin = _juliacall_pin()
    assert JULIAPKG["packages"]["PythonCall"] == {"uuid": PYTHONCALL_UUID, "version": f"={pin}"}
    assert PROJECT["deps"]["PythonCall"] == PYTHONCALL_UUID
    assert PROJECT["compat"]["PythonCall"] == f"={pin}"
    assert CONDAPKG["pip"]["deps"]["juliacall"] == f"=={pin}"


def test_project_declares_compat_for_every_dependency() -> None:
    for dep in ("Dispatcher", "PythonCall", "ResultTypes", "Serialization"):
        assert dep in PROJECT["deps"], dep
        assert dep in PROJECT["compat"], dep
    assert "julia" in PROJECT["compat"]


def test_julia_sources_use_explicit_imports_only() -> None:
    bare = re.compile(r"^\s*using\s+[\w.]+\s*$", re.MULTILINE)
    for path in [*BRIDGE.rglob("*.jl"), *(REPO / "examples" / "julia").rglob("*.jl")]:
        assert not bare.search(path.read_text()), f"bare `using` in {path}: import names explicitly"
