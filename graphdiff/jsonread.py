"""The hardened JSON reader of graphdiff's files, and the error it raises.

Reading trusts nothing in the file: before anything large is parsed or
allocated the file size and the nesting depth are checked against a
:class:`~graphdiff.schema.LoadLimits`; duplicate keys and NaN/Infinity are
refused while parsing. Every refusal is a :class:`GraphFormatError` with a
``code`` and the ``location`` (a JSON pointer) of the culprit. Values from a
file are shown only through :func:`_show` and :func:`_pointer` (escaped and
truncated).
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import GraphdiffError
from .schema import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    MODEL_FORMAT,
    PARAMS_FORMAT,
    VERSION_PATTERN,
    LoadLimits,
)

__all__ = ["GraphFormatError"]

MAX_MESSAGE = 500
_VERSION = re.compile(VERSION_PATTERN)
# A backslash and the character it escapes: once these are gone, every quote left
# opens or closes a string.
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_OTHER_FORMATS = {
    MODEL_FORMAT: "graphdiff.load",
    PARAMS_FORMAT: "graphdiff.load_params",
    CHECKPOINT_FORMAT: "graphdiff.load_checkpoint",
}


class GraphFormatError(GraphdiffError, ValueError):
    """A file (or a graph being saved) that graphdiff refuses.

    Attributes
    ----------
    code : what is wrong, one word (``"unknown_op"``, ``"too_large"``,
        ``"duplicate_key"``, ``"checksum"``, ...; see ``docs/format.md``).
    location : JSON pointer to the culprit in the file (``"/graph/nodes/3/attrs/op"``),
        ``""`` when the whole file is at fault.
    path : the file, when the error comes from reading one.

    >>> e = GraphFormatError("unknown_op", "op 'os.system' is not registered", "/graph/nodes/0")
    >>> e.code, str(e)
    ('unknown_op', "/graph/nodes/0: op 'os.system' is not registered [unknown_op]")
    """

    def __init__(self, code: str, message: str, location: str = "", path: str = "") -> None:
        self.code = code
        self.message = message
        self.location = location
        self.path = path
        where = ": ".join(p for p in (path, location) if p)
        text = f"{where}: {message}" if where else message
        tail = f" [{code}]"
        if len(text) + len(tail) > MAX_MESSAGE:
            text = text[: MAX_MESSAGE - len(tail) - 3] + "..."
        super().__init__(text + tail)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its parts (as multiprocessing does), not from the final text.
        return (type(self), (self.code, self.message, self.location, self.path))


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxstring = r.maxother = 80
    r.maxlong = 40
    r.maxlist = r.maxtuple = 8
    r.maxdict = r.maxset = 6
    r.maxlevel = 3
    return r


# Shortens before escaping: a value from a file may be a string of a gigabyte.
_REPR = _short_repr()


def _show(value: object, limit: int = 60) -> str:
    """A value from a file, safe to print: repr'd, ASCII-escaped and truncated."""
    text = _REPR.repr(value).encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pointer(parts: tuple[Any, ...] | list[Any]) -> str:
    """A JSON pointer; parts from the file are escaped and truncated."""
    out = []
    for p in parts:
        s = str(p)[:200].replace("~", "~0").replace("/", "~1")
        s = s.encode("ascii", "backslashreplace").decode("ascii")
        s = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in s)
        out.append(s if len(s) <= 40 else s[:37] + "...")
    return "/" + "/".join(out) if out else ""


# -- reading ---------------------------------------------------------------------


def _read_text(path: str | os.PathLike[str], limits: LoadLimits) -> str:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISREG(st.st_mode) and st.st_size > limits.max_file_bytes:
            raise GraphFormatError(
                "file_too_large",
                f"the file has {st.st_size} bytes; the limit is {limits.max_file_bytes} "
                "(LoadLimits.max_file_bytes)",
            )
        # Never read more than the limit + 1 bytes, even from a file that grows or a pipe.
        budget = limits.max_file_bytes + 1
        chunk = max(st.st_size + 1, 1 << 20) if stat.S_ISREG(st.st_mode) else 1 << 20
        parts = []
        while budget > 0:
            part = f.read(min(budget, chunk))
            if not part:
                break
            parts.append(part)
            budget -= len(part)
    data = b"".join(parts)
    del parts
    if len(data) > limits.max_file_bytes:
        raise GraphFormatError(
            "file_too_large",
            f"the file has more than {limits.max_file_bytes} bytes (LoadLimits.max_file_bytes)",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GraphFormatError(
            "bad_encoding", f"not UTF-8 text (byte {e.start} is {data[e.start]:#04x})"
        ) from None


def _prescan(text: str, limits: LoadLimits) -> None:
    """Refuse deep nesting and too many containers before the parser recurses or allocates."""
    # Splitting at quotes, not a regular expression over every character of the strings:
    # a model's arrays are megabytes of base64 (see benchmarks W6). Outside strings a
    # backslash is invalid JSON, and the parser stops there before it reaches anything
    # the escapes removed here could hide.
    if "\\" in text:
        text = _ESCAPE.sub("", text)
    parts = text.split('"')
    # Strings hold no raw newlines in valid JSON, so line numbers survive their removal.
    rest = "".join(parts[::2])
    if len(parts) % 2 == 0:  # an odd number of quotes: the text ends inside a string
        line = rest.count("\n") + 1
        raise GraphFormatError("truncated", f"the string starting on line {line} is never closed")
    containers = rest.count("[") + rest.count("{")
    if containers > limits.max_containers:
        raise GraphFormatError(
            "too_large",
            f"{containers} JSON arrays and objects; the limit is {limits.max_containers} "
            "(LoadLimits.max_containers)",
        )
    depth = 0
    for m in _BRACKET.finditer(rest):
        if rest[m.start()] in "[{":
            depth += 1
            if depth > limits.max_depth:
                line = rest.count("\n", 0, m.start()) + 1
                raise GraphFormatError(
                    "too_deep",
                    f"nesting deeper than {limits.max_depth} on line {line} "
                    "(LoadLimits.max_depth)",
                )
        else:
            depth -= 1
    if depth > 0:
        raise GraphFormatError(
            "truncated", f"the file ends inside {depth} unclosed array(s) or object(s)"
        )


class _Refused:
    """Stands in for a value refused while parsing, so its location can be found after."""


def _parse(text: str, limits: LoadLimits) -> Any:
    _prescan(text, limits)
    refused: list[tuple[object, str, str, str | None]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(items)
        if len(d) != len(items):
            seen: set[str] = set()
            for k, _ in items:
                if k in seen:
                    refused.append((d, "duplicate_key", f"duplicate key {_show(k)}", k))
                    break
                seen.add(k)
        return d

    def constant(token: str) -> _Refused:
        marker = _Refused()
        refused.append((marker, "non_finite", f"{token} is not a finite number", None))
        return marker

    def number(token: str) -> float | _Refused:
        x = float(token)
        if math.isfinite(x):
            return x
        marker = _Refused()
        refused.append((marker, "non_finite", f"{_show(token)} overflows a float", None))
        return marker

    try:
        doc = json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as e:
        raise GraphFormatError(
            "bad_json", f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from None
    except ValueError as e:  # an integer longer than Python's digit limit
        raise GraphFormatError("too_large", f"a number is too long: {_show(str(e))}") from None
    except RecursionError:  # pragma: no cover - the pre-scan bounds the depth
        raise GraphFormatError("too_deep", "nesting too deep") from None
    if refused:
        target, code, message, key = refused[0]
        where = _locate(doc, target) + ([key] if key is not None else [])
        raise GraphFormatError(code, message, _pointer(where))
    return doc


def _locate(doc: Any, target: object) -> list[Any]:
    """Path from the root of ``doc`` to the object ``target`` (found by identity)."""
    stack: list[tuple[Any, list[Any]]] = [(doc, [])]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if isinstance(node, dict):
            stack.extend((v, [*path, k]) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, [*path, i]) for i, v in enumerate(node))
    return []  # pragma: no cover - the target is always in the document


def _check_header(doc: Any, expected: str) -> None:
    if not isinstance(doc, dict):
        raise GraphFormatError("wrong_format", f"expected a JSON object, got {type(doc).__name__}")
    fmt = doc.get("format")
    if fmt != expected:
        other = _OTHER_FORMATS.get(fmt) if isinstance(fmt, str) else None
        hint = f"; read it with {other}" if other else ""
        raise GraphFormatError(
            "wrong_format",
            f"'format' is {_show(fmt)}, expected {expected!r}{hint}",
            "/format",
        )
    version = doc.get("format_version")
    m = _VERSION.fullmatch(version) if isinstance(version, str) else None
    major = int(version.split(".")[0]) if m and isinstance(version, str) else None
    if major != int(FORMAT_VERSION.split(".")[0]):
        from .schema import __version__

        what = "is newer than" if major is not None and major > 1 else "is not one of"
        raise GraphFormatError(
            "unsupported_version",
            f"format_version {_show(version)} {what} the versions this graphdiff "
            f"({__version__}) reads: {FORMAT_VERSION.split('.')[0]}.x (it writes {FORMAT_VERSION})",
            "/format_version",
        )


def _check_counts(doc: dict[str, Any], limits: LoadLimits) -> None:
    graph = doc.get("graph")
    if not isinstance(graph, dict):
        return
    for key, cap, name in (("nodes", limits.max_nodes, "max_nodes"),
                           ("edges", limits.max_edges, "max_edges")):
        items = graph.get(key)
        if isinstance(items, list) and len(items) > cap:
            raise GraphFormatError(
                "too_large",
                f"{len(items)} {key}; the limit is {cap} (LoadLimits.{name})",
                f"/graph/{key}",
            )


def _error_code(err: Mapping[str, Any]) -> str:
    kind, loc = err["type"], err["loc"]
    if kind in ("bad_id", "extra_forbidden"):
        return str(kind)
    if loc and loc[0] == "ops" and loc[-1] == "[key]":
        return "unknown_op"  # the plugin table names an op that no name could be
    if loc and (loc[-1] == "shape" or (len(loc) > 1 and loc[-2] == "shape")):
        return "bad_shape"
    if loc and loc[-1] == "dtype":
        return "bad_dtype"
    if kind == "missing":
        return "missing_field"
    return "bad_type"


def _invalid(e: ValidationError) -> GraphFormatError:
    err = e.errors(include_url=False)[0]
    message = str(err["msg"])
    if err["type"] != "missing":
        message += f", got {_show(err['input'])}"
    if e.error_count() > 1:
        message += f" (and {e.error_count() - 1} more problem(s))"
    return GraphFormatError(_error_code(err), message, _pointer(err["loc"]))


def _validate(model: type[BaseModel], doc: Any) -> Any:
    try:
        return model.model_validate(doc, strict=True)
    except ValidationError as e:
        raise _invalid(e) from None


@contextmanager
def _in_file(path: str | os.PathLike[str]) -> Iterator[None]:
    try:
        yield
    except GraphFormatError as e:
        raise GraphFormatError(e.code, e.message, e.location, os.fspath(path)) from None
    except MemoryError:
        raise GraphFormatError(
            "too_large", "not enough memory to load this file", "", os.fspath(path)
        ) from None


def _read_doc(path: str | os.PathLike[str], fmt: str, limits: LoadLimits) -> dict[str, Any]:
    doc = _parse(_read_text(path, limits), limits)
    _check_header(doc, fmt)
    return doc  # type: ignore[no-any-return]
