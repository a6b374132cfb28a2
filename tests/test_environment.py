"""environment.yml (conda, Binder) and pyproject.toml (pip) describe the same environment."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalize(requirement: str) -> tuple[str, str]:
    """('jupyter-book', '>=1.0.4.post1,<2') from 'jupyter-book>=1.0.4.post1,<2' (PEP 503 names)."""
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(2).replace(" ", "")


def pyproject_packages() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in ("book", "test"):
        requirements += project["optional-dependencies"][extra]
    return dict(normalize(r) for r in requirements)


def conda_packages() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_specs = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    specs += [s for s in pip_specs if not s.startswith("-e")]
    packages = dict(normalize(s) for s in specs)
    packages.pop("python")
    packages.pop("pip")
    return packages


def test_environment_yml_and_pyproject_list_the_same_packages():
    assert conda_packages() == pyproject_packages()


def test_environment_yml_installs_emlib_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section


def test_python_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python{project['requires-python']}" in env["dependencies"]


def test_jupyter_book_is_pinned_below_2():
    """Version 2 does not read _config.yml/_toc.yml."""
    assert pyproject_packages()["jupyter-book"] == ">=1.0.4.post1,<2"
