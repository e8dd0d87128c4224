"""The errors graphdiff raises on bad input.

Every error derives from :class:`GraphdiffError`, and each subclass also derives
from the builtin exception a caller would naturally catch, so ``except ValueError``
keeps working in code that does not know graphdiff.

>>> from graphdiff.errors import GraphdiffError, CycleError
>>> issubclass(CycleError, GraphdiffError) and issubclass(CycleError, ValueError)
True
"""

from __future__ import annotations

__all__ = [
    "CycleError",
    "FileError",
    "GraphError",
    "GraphdiffError",
    "InputError",
    "NonFiniteError",
    "OpContractError",
    "RegistryError",
    "ShapeError",
    "TargetError",
    "UnknownOpError",
]


class GraphdiffError(Exception):
    """Root of every error graphdiff raises on bad input."""

    def __str__(self) -> str:
        # KeyError's own __str__ quotes the message; every subclass reads as plain text.
        return str(self.args[0]) if self.args else ""


class GraphError(GraphdiffError, ValueError):
    """The graph handed to :func:`graphdiff.compile` is not a valid network."""


class CycleError(GraphError):
    """The graph has a cycle; the message prints its path."""


class UnknownOpError(GraphError, KeyError):
    """An ``op`` name that no registered op or plugin provides."""


class ShapeError(GraphdiffError, ValueError):
    """Arrays whose shapes do not fit together (operands, parameters, batches)."""


class InputError(GraphdiffError, KeyError):
    """A missing or malformed input or parameter passed to a compiled network."""


class RegistryError(GraphdiffError, ValueError):
    """An op registration that cannot be accepted (a taken name, a bad definition)."""


class OpContractError(GraphdiffError, TypeError):
    """An op broke its contract (wrong number or shape of gradients, bad output)."""


class NonFiniteError(GraphdiffError, FloatingPointError):
    """A value or delta became NaN or infinite while finite checks were switched on.

    Attributes
    ----------
    node : the first node whose value (``phase="forward"``) or delta
        (``phase="backward"``) was not finite.
    phase : ``"forward"`` or ``"backward"``.
    """

    def __init__(self, message: str, node: object = None, phase: str = "") -> None:
        super().__init__(message)
        self.node = node
        self.phase = phase


class FileError(GraphdiffError, OSError):
    """A file that cannot be read or written (missing, not permitted, disk full, ...).

    The message names the file; ``path`` holds it and ``errno`` the system's error
    number when there is one.

    >>> e = FileError("cannot read 'm.json': No such file or directory", "m.json", 2)
    >>> str(e), e.path, e.errno, isinstance(e, OSError)
    ("cannot read 'm.json': No such file or directory", 'm.json', 2, True)
    """

    def __init__(self, message: str, path: str = "", errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.path, self.errno))


class TargetError(GraphdiffError, ValueError):
    """Targets outside the loss's domain (0/1 labels for a -1/+1 loss, say).

    The message names the loss node and its target, shows the values found and
    the fix. Attributes: ``node`` (the loss node), ``found`` (the distinct
    values found, sorted, at most a few).
    """

    def __init__(self, message: str, node: object = None, found: tuple[float, ...] = ()) -> None:
        super().__init__(message)
        self.node = node
        self.found = found
