"""The installed distribution's version (pyproject.toml's `version`), read from the package metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "leader-node"


def package_version() -> str:
    """`0.1.0` for an installed (or `pip install -e`) leader-node; `unknown` when run from a bare checkout."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
