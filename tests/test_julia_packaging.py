"""Versions and identities agree: pyproject.toml, juliapkg.json, Project.toml, CondaPkg.toml."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
import types
from pathlib import Path

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
DISPATCHER_UUID = "a48d5fe2-965b-541b-8ad8-ab19b69f3f25"
RESULTTYPES_UUID = "08a2b407-ddc3-586a-afd6-c784ad1fffe2"


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


def test_juliapkg_lists_what_a_julia_graph_file_imports() -> None:
    # `pydispatch run graph.jl` runs `import Dispatcher` in juliacall's environment,
    # which juliapkg builds from juliapkg.json files only.
    pkgs = JULIAPKG["packages"]
    assert pkgs["Dispatcher"]["uuid"] == PROJECT["deps"]["Dispatcher"] == DISPATCHER_UUID
    assert pkgs["ResultTypes"]["uuid"] == PROJECT["deps"]["ResultTypes"] == RESULTTYPES_UUID
    # Bounds inside DispatchBridge's own compat (Dispatcher "1", ResultTypes "3"), and
    # ResultTypes 3 is within Dispatcher 1.0.1's compat ("1.3, 2, 3").
    assert pkgs["Dispatcher"]["version"] == "1.0.1 - 1"
    assert PROJECT["compat"]["Dispatcher"] == "1"
    assert pkgs["ResultTypes"]["version"] == PROJECT["compat"]["ResultTypes"] == "3"
    assert JULIAPKG["julia"] == "^1.10.3"


def test_condapkg_resolves_from_this_checkout() -> None:
    # No index serves pydispatch-dask: CondaPkg installs the checkout (a path relative
    # to CondaPkg.toml's directory), editable.
    name = PYPROJECT["project"]["name"]
    entry = CONDAPKG["pip"]["deps"][name]
    assert entry["version"].startswith("@")
    assert entry["editable"] is True
    root = (BRIDGE / entry["version"][1:].strip()).resolve()
    assert root == REPO.resolve()
    assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["name"] == name


def test_numpy_is_installed_wherever_julia_arrays_are_decoded() -> None:
    assert "numpy" in CONDAPKG["deps"]
    extra = PYPROJECT["project"]["optional-dependencies"]["julia"]
    assert any(re.match(r"numpy\b", d) for d in extra), extra


def test_the_wheel_ships_no_julia_sources_and_the_readme_says_so() -> None:
    # DispatchBridge's sources are not package data: a wheel cannot `Pkg.develop` them.
    data = PYPROJECT["tool"]["setuptools"]["package-data"]["pydispatch"]
    assert not any("julia" in d for d in data)
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Julia", 1)[1].split("\n## ", 1)[0]
    assert "checkout" in section and "editable" in section
    assert "wheel" in section


def test_the_wheel_does_not_ship_juliapkg_json() -> None:
    # pyjuliapkg (0.1.28, deps.py `deps_files`) reads every `*/juliapkg.json` on
    # sys.path; in site-packages its `"path": "../julia/DispatchBridge"` does not
    # exist, so `resolve` fails `Pkg.develop` and `import juliacall` fails for every
    # user of that environment. So it is not package data.
    data = PYPROJECT["tool"]["setuptools"]["package-data"]["pydispatch"]
    assert not any(fnmatch.fnmatch("juliapkg.json", d) for d in data), data
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Julia", 1)[1].split("\n## ", 1)[0]
    assert "does not ship `juliapkg.json`" in section


def _editable_deps_files() -> list[str]:
    # pyjuliapkg 0.1.28, deps.py `editable_deps_files`, verbatim in effect: for each
    # setuptools editable finder on sys.meta_path, `<dir>/juliapkg.json` and
    # `<dir>/*/juliapkg.json` for every directory in its MAPPING.
    out = []
    for finder in sys.meta_path:
        name = finder.__module__
        if name.startswith("__editable___") and name.endswith("_finder"):
            for path in sys.modules[name].MAPPING.values():
                if os.path.isdir(path):
                    out.append(os.path.join(path, "juliapkg.json"))
                    out.extend(os.path.join(path, d, "juliapkg.json") for d in os.listdir(path))
    return [f for f in out if os.path.isfile(f)]


def test_an_editable_install_still_finds_juliapkg_json(tmp_path: Path) -> None:
    # setuptools' editable install of this flat layout maps `pydispatch` to the
    # checkout's package directory (a finder module with MAPPING), which is where
    # juliapkg.json sits, so pyjuliapkg finds it without package data.
    finder = types.ModuleType("__editable___pydispatch_fake_finder")
    finder.MAPPING = {"pydispatch": str(REPO / "pydispatch")}  # type: ignore[attr-defined]

    class Finder:
        pass

    Finder.__module__ = finder.__name__
    sys.modules[finder.__name__] = finder
    sys.meta_path.append(Finder())  # type: ignore[arg-type]
    try:
        found = _editable_deps_files()
    finally:
        sys.meta_path.pop()
        del sys.modules[finder.__name__]
    assert str(REPO / "pydispatch" / "juliapkg.json") in found


def test_julia_tests_get_a_timeout_for_a_cold_precompile() -> None:
    from tests.julia_helpers import needs_julia

    (mark,) = [m for m in needs_julia if m.name == "timeout"]
    assert mark.args[0] >= 900
    assert mark.args[0] > PYPROJECT["tool"]["pytest"]["ini_options"]["timeout"]
