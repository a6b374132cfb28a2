"""One pinned environment: pyproject.toml (bounds), requirements-lock.txt (exact versions), and
environment.yml (conda, Binder) agree; Binder installs emlib after the environment is built."""
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DIST = canonicalize_name(PROJECT["name"])


def lock() -> dict[str, str]:
    """{name: version} of requirements-lock.txt."""
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def declared(extras=("chapters", "distributed", "book", "test")) -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    return [r for r in reqs if canonicalize_name(r.name) != DIST]


def test_the_lock_pins_every_declared_package_within_its_bounds():
    pins = lock()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"the lock pins {req.name}=={pins[name]}, outside {req.specifier}: run make lock"


def test_the_lock_does_not_pin_emlib_itself():
    assert DIST not in lock() and "emlib" not in lock()


def test_environment_yml_installs_the_lock_and_binder_installs_emlib():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ["-r requirements-lock.txt"]
    post_build = (ROOT / "postBuild").read_text()
    assert re.search(r"pip install --no-deps \.$", post_build, re.M)
    assert (ROOT / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_python_versions_agree():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert PROJECT["requires-python"] == ">=3.11"
    assert "python=3.11" in env["dependencies"]


def test_make_venv_and_ci_use_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PIP\s*:=.*--constraint \$\(LOCK\)", makefile, re.M)
    assert re.search(r"^LOCK\s*:= requirements-lock.txt", makefile, re.M)


def test_jupyter_book_is_pinned_below_2():
    """Version 2 does not read _config.yml/_toc.yml."""
    book = {canonicalize_name(r.name): r for r in declared(("book",))}
    assert str(book["jupyter-book"].specifier) in (">=1.0.4.post1,<2", "<2,>=1.0.4.post1")
