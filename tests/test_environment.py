"""The install and CI files agree with each other (no conda on CI, so environment.yml is checked statically).

* environment.yml: its Python lies inside ``requires-python``; its pip section installs this checkout with extras
  that exist in ``[project.optional-dependencies]`` and include ``notebooks``.
* ``.ci/run`` runs ``make test`` (the README's command, nothing weaker) and the Makefile's test target runs
  pytest over ``tests`` and ``notebooks`` with nbval and the sanitize file.
* requirements/ci.txt pins ``torch==`` exactly, inside the honest range that pyproject.toml keeps.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="Python 3.10 needs tomli to read pyproject.toml")

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = REPO_ROOT / "pyproject.toml"
ENVIRONMENT = REPO_ROOT / "environment.yml"
MAKEFILE = REPO_ROOT / "Makefile"
CI_RUN = REPO_ROOT / ".ci" / "run"
CI_REQUIREMENTS = REPO_ROOT / "requirements" / "ci.txt"
SANITIZE_FILE = "notebooks/nbval_sanitize.cfg"

# `.`, `-e .`, `--editable .`, `-e .[a,b]`, `.[a, b]`
REPO_INSTALL = re.compile(r"^(?:(?:-e|--editable)(?:\s+|=))?\.(?:\[(?P<extras>[^\]]*)\])?$")
CONDA_PYTHON = re.compile(r"^python\s*={1,2}\s*(?P<version>\d+\.\d+)(?:\.\*)?$")


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def environment() -> dict:
    data = yaml.safe_load(ENVIRONMENT.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "environment.yml must be a mapping"
    assert isinstance(data.get("dependencies"), list), "environment.yml has no dependencies list"
    return data


def _pip_section(environment: dict) -> list[str]:
    sections = [dep["pip"] for dep in environment["dependencies"] if isinstance(dep, dict) and "pip" in dep]
    assert len(sections) == 1, f"environment.yml needs exactly one `pip:` section, found {len(sections)}"
    return [str(line).strip() for line in sections[0]]


def _recipe(makefile: str, target: str) -> str:
    """The recipe of `target` with line continuations joined."""
    match = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n?)+)", makefile, flags=re.MULTILINE)
    assert match, f"the Makefile has no `{target}` target with a recipe"
    return re.sub(r"\\\n\s*", " ", match.group(1))


# --- environment.yml vs pyproject.toml ------------------------------------------------------------------------


def test_environment_python_within_requires_python(environment, pyproject):
    pythons = [dep for dep in environment["dependencies"] if isinstance(dep, str) and re.match(r"python\b", dep)]
    assert len(pythons) == 1, f"environment.yml should list python once, found {pythons}"
    match = CONDA_PYTHON.match(pythons[0].replace(" ", ""))
    assert match, f"pin one minor version, e.g. `python=3.11` (found {pythons[0]!r})"
    requires = SpecifierSet(pyproject["project"]["requires-python"])
    version = Version(match["version"] + ".0")
    assert version in requires, f"environment.yml python {match['version']} is outside requires-python {requires}"


def test_environment_has_pip(environment):
    assert "pip" in environment["dependencies"], "list `pip` among the conda dependencies when using a pip section"


def test_environment_installs_the_repo_with_existing_extras(environment, pyproject):
    installs = [m for line in _pip_section(environment) if (m := REPO_INSTALL.match(line))]
    assert len(installs) == 1, "the pip section must install this checkout once (`-e .[notebooks,...]`)"
    extras = {e.strip() for e in (installs[0]["extras"] or "").split(",") if e.strip()}
    known = set(pyproject["project"].get("optional-dependencies", {}))
    assert extras <= known, f"extras {sorted(extras - known)} are not in [project.optional-dependencies] {known}"
    assert "notebooks" in extras, "the readers' environment must install the `notebooks` extra"


def test_all_extra_names_existing_extras(pyproject):
    extras = pyproject["project"]["optional-dependencies"]
    name = pyproject["project"]["name"]
    for requirement in map(Requirement, extras.get("all", [])):
        if requirement.name == name:
            assert requirement.extras <= set(extras), f"`all` names unknown extras {requirement.extras - set(extras)}"


# --- CI and the Makefile --------------------------------------------------------------------------------------


def test_ci_runs_make_test():
    text = CI_RUN.read_text(encoding="utf-8")
    assert os.access(CI_RUN, os.X_OK), ".ci/run must be executable"
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    assert "make test" in lines, ".ci/run must run `make test`, the command the README gives"
    assert not any(re.search(r"\bpytest\b", line) for line in lines), (
        ".ci/run must not call pytest itself: change the Makefile's test target instead"
    )
    assert "set -euo pipefail" in lines, ".ci/run must stop on the first failure"
    assert "export MMSTN_REQUIRE_BROWSER=1" in lines, "CI must turn a skipped browser test into a failure"


def test_make_test_runs_everything():
    makefile = MAKEFILE.read_text(encoding="utf-8")
    prerequisites = re.search(r"^test:([^\n]*)", makefile, flags=re.MULTILINE)
    assert prerequisites and "browser" in prerequisites.group(1).split(), "`make test` must depend on `browser`"
    recipe = _recipe(makefile, "test")
    assert re.search(r"-m pytest\s+tests notebooks\b", recipe), (
        f"`make test` must run pytest on tests and notebooks:\n{recipe}"
    )
    for option in ("--nbval-lax", "--nbval-current-env", f"--nbval-sanitize-with {SANITIZE_FILE}",
                   "--nbval-cell-timeout="):
        assert option in recipe, f"`make test` lost {option!r}:\n{recipe}"
    assert "MMSTN_SMOKE=1" in recipe, "`make test` must run the notebooks in smoke mode"
    assert (REPO_ROOT / SANITIZE_FILE).is_file()


def test_torch_pinned_in_ci_and_ranged_in_pyproject(pyproject):
    lines = [line.split("#", 1)[0].strip() for line in CI_REQUIREMENTS.read_text(encoding="utf-8").splitlines()]
    pins = [line for line in lines if re.match(r"torch\b", line)]
    assert len(pins) == 1 and re.fullmatch(r"torch==\d+(?:\.\d+)+(?:\+\w+)?", pins[0].replace(" ", "")), (
        f"requirements/ci.txt must pin torch exactly (torch==X.Y.Z), found {pins}"
    )
    pinned = Version(pins[0].split("==", 1)[1])

    torch = [r for r in map(Requirement, pyproject["project"]["dependencies"]) if r.name == "torch"]
    assert len(torch) == 1, "pyproject.toml must depend on torch once"
    operators = {spec.operator for spec in torch[0].specifier}
    assert operators and not operators & {"==", "==="}, f"pyproject.toml must keep a torch range, not {torch[0]}"
    assert torch[0].specifier.contains(pinned, prereleases=True), (
        f"CI's torch=={pinned} is outside pyproject's range {torch[0].specifier}"
    )

    makefile = MAKEFILE.read_text(encoding="utf-8")
    assert re.search(r"^TORCH_SPEC\s*\?=\s*-r requirements/ci\.txt\s*$", makefile, flags=re.MULTILINE), (
        "the Makefile must install torch from requirements/ci.txt by default"
    )
