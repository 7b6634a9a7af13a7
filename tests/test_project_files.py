"""The set-up a newcomer relies on: pins agree everywhere, README names the two commands, CI calls them."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    return dict(m.groups() for m in (re.match(r"^\s*-?\s*([A-Za-z0-9_.-]+)==(\S+)\s*$", line) for line in lines) if m)


def test_environment_yml_has_the_same_pins_as_requirements():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert req == _pins(pip_section)
    assert req["torch"] == "2.14.1" and req["torchvision"] == "0.29.1"


def test_package_ranges_admit_the_gpu_machines_versions():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"torch>=2.4"' in text and '"torchvision>=0.19"' in text


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make course" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make install" in ci
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert notebook.stem in readme, f"README does not list {notebook.name}"
