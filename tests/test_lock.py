"""requirements.lock (what bootstrap and the image install) agrees with pyproject.toml (the ranges).

Read from the files only: no database, no broker, no network.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = pytest.mark.pure

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
REFRESH = "refresh it with the command in README.md (uv pip compile ... -o requirements.lock)"
# The lock is for the image and bootstrap: CPython 3.11 on Linux.
TARGET = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
          "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
          "platform_python_implementation": "CPython"}


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    found += [Requirement(r) for r in project["optional-dependencies"]["test"]]
    return [r for r in found if r.marker is None or r.marker.evaluate(TARGET)]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def _pinned_as_direct() -> set[str]:
    """Packages the lock says it pinned because pyproject.toml asked for them (uv's '# via' notes)."""
    direct, current = set(), None
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if m:
            current = canonicalize_name(m.group(1))
        elif current and re.search(r"#\s+(via\s+)?rms-ml \(pyproject\.toml\)", line):
            direct.add(current)
    return direct


def test_every_dependency_of_pyproject_is_pinned_in_the_lock_inside_its_range():
    pins = _pins()
    missing = [str(r) for r in _declared() if canonicalize_name(r.name) not in pins]
    outside = [f"{r} (locked {pins[canonicalize_name(r.name)]})" for r in _declared()
               if canonicalize_name(r.name) in pins
               and not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)]
    assert not missing, f"in pyproject.toml, not in requirements.lock: {missing}; {REFRESH}"
    assert not outside, f"locked outside pyproject.toml's range: {outside}; {REFRESH}"


def test_the_lock_pins_no_direct_dependency_that_pyproject_dropped():
    declared = {canonicalize_name(r.name) for r in _declared()}
    stale = sorted(_pinned_as_direct() - declared)
    assert not stale, f"requirements.lock pins these for pyproject.toml, which no longer asks for them: {stale}; {REFRESH}"


def test_every_pin_is_exact_and_hashed():
    """pip's --require-hashes mode (bootstrap, Dockerfile) refuses a line without a hash."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n", 2)[2])
    assert len(entries) == len(_pins()) > 50
    unhashed = [e.split(" ", 1)[0] for e in entries if "--hash=sha256:" not in e]
    assert not unhashed, f"pins without hashes: {unhashed}; {REFRESH}"


def test_bootstrap_and_the_image_install_from_the_lock():
    assert "--require-hashes -r requirements.lock" in (ROOT / "scripts" / "bootstrap.sh").read_text()
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "requirements.lock" in dockerfile and "--require-hashes -r requirements.lock" in dockerfile
