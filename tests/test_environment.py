"""The two environment descriptions (pyproject.toml for pip, environment.yml for conda) must not drift,
and the running environment must satisfy them (torch pinned: an unpinned torch pulls CUDA wheels)."""

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in reqs}


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip: section"
    reqs = [r for r in pip_lists[0] if not r.startswith("-e")]
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in reqs}


def test_pyproject_and_environment_yml_list_the_same_requirements():
    pip, conda = pyproject_requirements(), conda_requirements()
    assert pip == conda, (
        f"only in pyproject.toml: {sorted(set(pip.items()) - set(conda.items()))}; "
        f"only in environment.yml: {sorted(set(conda.items()) - set(pip.items()))}"
    )


def test_torch_is_pinned_to_the_cpu_wheel_version():
    assert pyproject_requirements()["torch"] == "==2.13.0"


def test_installed_packages_satisfy_the_requirements():
    problems = []
    for name, spec in pyproject_requirements().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            problems.append(f"{name} not installed")
            continue
        if not Requirement(f"{name}{spec}").specifier.contains(installed.split("+")[0], prereleases=True):
            problems.append(f"{name}=={installed} does not satisfy {spec}")
    assert not problems, problems


def test_python_version_in_both_places():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"] == ">=3.11"
