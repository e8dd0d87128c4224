"""graphdiff's version: pyproject.toml's, read back from the installed metadata."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("graphdiff")
except PackageNotFoundError:  # pragma: no cover - a checkout that was never installed
    __version__ = "0+unknown"
