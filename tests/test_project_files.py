"""The set-up a newcomer relies on: pins agree everywhere, README names the two commands, CI calls them."""

import json
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


def test_python_version_agrees_everywhere():
    minimum = re.search(r'requires-python = ">=(3\.\d+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f"Python {minimum}+" in (ROOT / "README.md").read_text()
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


INTERNAL = re.compile(
    r"the issue|our notes|our reference notes|not yet checked|our CPU trials|course report|"
    r"while writing this|committed quick run|\.\./shared|inspect\.getsource",
    re.IGNORECASE,
)


def test_student_facing_text_speaks_of_the_course_only():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            text = "".join(cell["source"])
            hit = INTERNAL.search(text)
            assert hit is None, f"{path.name} cell {i}: {hit.group(0)!r}"
