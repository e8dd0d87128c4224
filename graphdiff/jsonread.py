"""The hardened JSON reader of graphdiff's files, and the error it raises.

Reading trusts nothing in the file: before anything large is parsed or
allocated the file size and the nesting depth are checked against a
:class:`~graphdiff.schema.LoadLimits`; duplicate keys and NaN/Infinity are
refused while parsing. Every refusal is a :class:`GraphFormatError` with a
``code`` and the ``location`` (a JSON pointer) of the culprit. Values from a
file are shown only through :func:`show` and :func:`pointer` (escaped and
truncated).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import reprlib
import secrets
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from .errors import FileError, GraphdiffError
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
# A JSON string, escapes honoured, or one never closed (to the end of the text):
# on valid JSON (outside strings a backslash is invalid, and the parser stops there)
# it finds exactly the strings the parser will, looking at each character once.
_STRING = re.compile(rb'"(?:[^"\\]*(?:\\.[^"\\]*)*"|[^"\\]*(?:\\.[^"\\]*)*\\?\Z)', re.DOTALL)
# A "data" key and the quote that opens its value (an array's payload).
_DATA_KEY = re.compile(rb'"data"\s*:\s*"')
_CONTROL = re.compile(rb"[\x00-\x1f]")
_QUOTE = ord('"')
_EMPTY_LIST, _EMPTY_OBJECT = ord("[") * 256 + ord("]"), ord("{") * 256 + ord("}")
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


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


def show(value: object, limit: int = 60) -> str:
    """A value from a file, safe to print: repr'd, ASCII-escaped and truncated."""
    text = _REPR.repr(value).encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def pointer(parts: tuple[Any, ...] | list[Any]) -> str:
    """A JSON pointer; parts from the file are escaped and truncated."""
    out = []
    for p in parts:
        s = str(p)[:200].replace("~", "~0").replace("/", "~1")
        s = s.encode("ascii", "backslashreplace").decode("ascii")
        s = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in s)
        out.append(s if len(s) <= 40 else s[:37] + "...")
    return "/" + "/".join(out) if out else ""


# -- reading ---------------------------------------------------------------------


def _open_regular(path: object) -> io.BufferedReader:
    """``path`` opened for reading in binary mode, if it is a regular file.

    Anything else is refused (:class:`~graphdiff.errors.FileError`) before it is
    opened for reading: a FIFO or a terminal would block, a device could be
    endless, a directory is not a file.
    """
    name = path_name(path)
    try:
        kind = _kind(os.stat(name).st_mode)
        if kind is None:  # opened without blocking, then checked again: it may have changed
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)  # not inheritable (PEP 446)
            try:
                kind = _kind(os.fstat(fd).st_mode)
                if kind is None:
                    return os.fdopen(fd, "rb")
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
    except OSError as e:
        raise FileError(f"cannot read {name!r}: {e.strerror or e}", name, e.errno) from None
    raise FileError(f"cannot read {name!r}: it is {kind}, not a regular file", name)


def path_name(path: object) -> str:
    """``path`` as a non-empty str, or a :class:`~graphdiff.errors.FileError`."""
    if isinstance(path, (str, os.PathLike)):
        name = os.fspath(path)
        if isinstance(name, str) and name and "\x00" not in name:  # NUL: os.stat's ValueError
            return name
    raise FileError(f"expected a file path (a str or os.PathLike), got {show(path)}")


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file is (``None`` for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _read_bytes(f: io.BufferedReader, name: str, limits: LoadLimits) -> bytearray:
    """The file's bytes, read into one buffer (never more than the limit + 1 bytes,
    even from a file that grows while it is read)."""
    size = os.fstat(f.fileno()).st_size
    if size > limits.max_file_bytes:
        raise GraphFormatError(
            "file_too_large",
            f"the file has {size} bytes; the limit is {limits.max_file_bytes} "
            "(LoadLimits.max_file_bytes)",
        )
    buf = bytearray(size + 1)
    n = 0
    try:
        with memoryview(buf) as view:
            while n < len(buf):
                k = f.readinto(view[n:])
                if not k:
                    break
                n += k
        while n == len(buf) and n <= limits.max_file_bytes:  # it grew
            more = f.read(min(1 << 20, limits.max_file_bytes + 1 - n))
            if not more:
                break
            buf += more
            n += len(more)
    except OSError as e:
        raise FileError(f"cannot read {name!r}: {e.strerror or e}", name, e.errno) from None
    if n > limits.max_file_bytes:
        raise GraphFormatError(
            "file_too_large",
            f"the file has more than {limits.max_file_bytes} bytes (LoadLimits.max_file_bytes)",
        )
    del buf[n:]
    return buf


def _prescan(data: bytes | bytearray, limits: LoadLimits) -> list[tuple[int, int]]:
    """Refuse too many values, too much text outside array payloads, too many
    containers and deep nesting, before the parser recurses or allocates; returns
    where the array payloads (the string values of ``"data"`` keys) are.

    Counted by searches in C and by numpy, a MiB at a time, with copies only of
    the text outside payloads (once it is found to be within ``max_text_bytes``): a
    refusal costs little time and memory at any file size, and no Python object is
    made per value or string.
    """
    keys = data.count(b'"data"')
    if keys > limits.max_json_values:
        raise _too_many_values(keys, limits)
    spans = _payload_spans(data)
    payload = sum(b - a for a, b in spans)
    if len(data) - payload > limits.max_text_bytes:
        raise GraphFormatError(
            "text_too_large",
            f"{len(data) - payload} bytes outside array payloads; the limit is "
            f"{limits.max_text_bytes} (LoadLimits.max_text_bytes)",
        )
    if payload > len(data) // 2:  # the rest is scanned without the payloads' text
        data = _without(data, spans)
    if b"\\" in data:
        # Escaped backslashes, then escaped quotes, removed (left to right, as JSON
        # pairs them): every quote left opens or closes a string. Outside strings a
        # backslash is invalid JSON, and the parser stops there.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    quotes = data.count(b'"')
    if quotes % 2:
        line = data.count(b"\n", 0, data.rfind(b'"')) + 1
        raise GraphFormatError(
            "truncated", f"the string starting on line {line} is never closed"
        )
    if quotes // 2 > limits.max_json_values:  # strings alone
        raise _too_many_values(quotes // 2, limits)
    _count_outside_strings(data, limits)
    return spans


def _payload_spans(data: bytes | bytearray) -> list[tuple[int, int]]:
    """Where the string values of ``"data"`` keys (array payloads) are: found with
    searches in C, not by a regular expression over each of their characters."""
    spans: list[tuple[int, int]] = []
    at = 0
    while (k := data.find(b'"data"', at)) >= 0:
        at = k + 6
        m = _DATA_KEY.match(data, k)
        if m is None:
            continue
        a = m.end()
        b = data.find(b'"', a)
        if b < 0:
            break  # never closed: the pre-scan says so
        if data.find(b"\\", a, b) >= 0:  # escapes: that string, by the regular expression
            end = _STRING.match(data, a - 1)
            if end is None or data[end.end() - 1] != ord('"'):
                break
            b = end.end() - 1
        spans.append((a, b))
        at = b + 1
    return spans


def _without(data: bytes | bytearray, spans: list[tuple[int, int]]) -> bytes:
    """``data`` with the text of each span removed."""
    pieces, at = [], 0
    for a, b in spans:
        pieces.append(data[at:a])
        at = b
    pieces.append(data[at:])
    return b"".join(pieces)


def _count_outside_strings(data: bytes | bytearray, limits: LoadLimits) -> None:
    """Values, containers and nesting outside strings (``data`` has no escapes left),
    counted with numpy 256 KiB at a time: no Python object per value or string."""
    counts = dict.fromkeys(b",:[{", 0)
    empty = depth = inside = 0
    text = np.frombuffer(data, dtype=np.uint8)
    for start in range(0, len(text), 1 << 18):
        chunk = text[start:start + (1 << 18)]
        # After each character: inside a string? (quotes so far, odd or even)
        parity = (np.cumsum(chunk == _QUOTE, dtype=np.uint8) & 1) ^ inside
        outside = parity == 0
        for c in counts:
            counts[c] += int(np.count_nonzero((chunk == c) & outside))
        pairs = chunk[:-1].astype(np.uint16) * 256 + chunk[1:]
        empty += int(np.count_nonzero(((pairs == _EMPTY_LIST) | (pairs == _EMPTY_OBJECT))
                                      & outside[:-1]))
        level = depth + np.cumsum(np.where(outside, _STEP[chunk], 0), dtype=np.int32)
        if len(level) and level.max() > limits.max_depth:
            at = start + int(np.argmax(level > limits.max_depth))
            line = data.count(b"\n", 0, at) + 1
            raise GraphFormatError(
                "too_deep",
                f"nesting deeper than {limits.max_depth} on line {line} (LoadLimits.max_depth)",
            )
        depth = int(level[-1]) if len(level) else depth
        inside = int(parity[-1]) if len(parity) else inside
    containers = counts[ord("[")] + counts[ord("{")]
    # Every value but the first follows a comma or a colon, or is the first item of
    # a container; object keys count as values.
    values = 1 + counts[ord(",")] + counts[ord(":")] + containers - empty
    if values > limits.max_json_values:
        raise _too_many_values(values, limits)
    if containers > limits.max_containers:
        raise GraphFormatError(
            "too_large",
            f"{containers} JSON arrays and objects; the limit is {limits.max_containers} "
            "(LoadLimits.max_containers)",
        )
    if depth > 0:
        raise GraphFormatError(
            "truncated", f"the file ends inside {depth} unclosed array(s) or object(s)"
        )


def _too_many_values(count: int, limits: LoadLimits) -> GraphFormatError:
    return GraphFormatError(
        "too_many_values",
        f"{count} JSON values (object keys included) or more; the limit is "
        f"{limits.max_json_values} (LoadLimits.max_json_values)",
    )


def _decode_text(data: bytes | bytearray) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GraphFormatError(
            "bad_encoding", f"not UTF-8 text (byte {e.start} is {data[e.start]:#04x})"
        ) from None


class _Refused:
    """Stands in for a value refused while parsing, so its location can be found after."""


def _parse(text: str) -> Any:
    """The JSON document of ``text`` (pre-scanned): duplicate keys and non-finite
    numbers refused, with their location."""
    refused: list[tuple[object, str, str, str | None]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(items)
        if len(d) != len(items):
            seen: set[str] = set()
            for k, _ in items:
                if k in seen:
                    refused.append((d, "duplicate_key", f"duplicate key {show(k)}", k))
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
        refused.append((marker, "non_finite", f"{show(token)} overflows a float", None))
        return marker

    try:
        doc = json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as e:
        if e.msg.startswith("Unterminated string"):
            raise GraphFormatError(
                "truncated", f"the string starting on line {e.lineno} is never closed"
            ) from None
        raise GraphFormatError(
            "bad_json", f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from None
    except ValueError as e:  # an integer longer than Python's digit limit
        raise GraphFormatError("too_large", f"a number is too long: {show(str(e))}") from None
    except RecursionError:  # pragma: no cover - the pre-scan bounds the depth
        raise GraphFormatError("too_deep", "nesting too deep") from None
    if refused:
        target, code, message, key = refused[0]
        where = _locate(doc, target) + ([key] if key is not None else [])
        raise GraphFormatError(code, message, pointer(where))
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
            f"'format' is {show(fmt)}, expected {expected!r}{hint}",
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
            f"format_version {show(version)} {what} the versions this graphdiff "
            f"({__version__}) reads: {FORMAT_VERSION.split('.')[0]}.x (it writes {FORMAT_VERSION})",
            "/format_version",
        )


def check_counts(doc: dict[str, Any], limits: LoadLimits) -> None:
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


def format_error(e: ValidationError) -> GraphFormatError:
    err = e.errors(include_url=False)[0]
    message = str(err["msg"])
    if err["type"] != "missing":
        message += f", got {show(err['input'])}"
    if e.error_count() > 1:
        message += f" (and {e.error_count() - 1} more problem(s))"
    return GraphFormatError(_error_code(err), message, pointer(err["loc"]))


def validate_doc(model: type[BaseModel], doc: Any) -> Any:
    try:
        return model.model_validate(doc, strict=True)
    except ValidationError as e:
        raise format_error(e) from None


@contextmanager
def in_file(path: object) -> Iterator[None]:
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ""
    try:
        yield
    except GraphFormatError as e:
        raise GraphFormatError(e.code, e.message, e.location, str(name)) from None
    except MemoryError:
        raise GraphFormatError(
            "too_large", "not enough memory to load this file", "", str(name)
        ) from None


def read_doc(path: str | os.PathLike[str], fmt: str, limits: LoadLimits) -> dict[str, Any]:
    """The document of a file, every array payload in it (checkpoints: their checksum
    covers the payloads' text)."""
    with _open_regular(path) as f:
        data = _read_bytes(f, os.fspath(path), limits)
    _prescan(data, limits)
    text = _decode_text(data)
    del data
    doc = _parse(text)
    del text
    _check_header(doc, fmt)
    return doc  # type: ignore[no-any-return]


@contextmanager
def open_doc(
    path: str | os.PathLike[str], fmt: str, limits: LoadLimits
) -> Iterator[tuple[dict[str, Any], Payloads]]:
    """The document of a file with its large array payloads left in the file
    (see :class:`Payloads`), which stays open until the block ends."""
    with _open_regular(path) as f:
        data = _read_bytes(f, os.fspath(path), limits)
        # Large payloads without escapes are left in the file (their characters are
        # checked as they are decoded: strict base64, or valid text when restored).
        spans = [
            (a, b) for a, b in _prescan(data, limits)
            if b - a >= Payloads.INLINE and data.find(b"\\", a, b) < 0
        ]
        payloads = Payloads(f, spans)
        skeleton = payloads.skeleton(data)
        del data
        box = [_parse(_decode_text(skeleton))]  # the caller drops the document when done
        del skeleton
        _check_header(box[0], fmt)
        yield box.pop(), payloads


class Payloads:
    """Large array payloads of a file being loaded, decoded from the file itself.

    The text parsed holds a placeholder in their place (a random tag per load, so a
    file cannot forge one), and each array is decoded from the file straight into
    its own memory, a few MiB at a time: a large model is never in memory as text
    and as arrays at once.
    """

    INLINE = 1 << 16  # smaller payloads stay in the text
    CHUNK = 1 << 20  # base64 characters decoded at a time (a multiple of 4)

    def __init__(self, f: io.BufferedReader, spans: list[tuple[int, int]]) -> None:
        self.fd = f.fileno()
        self.tag = "#payload-" + secrets.token_hex(12) + "#"
        self.spans = {f"{self.tag}{i}": span for i, span in enumerate(spans)}

    def skeleton(self, data: bytes | bytearray) -> bytes:
        """``data`` with each payload replaced by its placeholder."""
        pieces, at = [], 0
        for name, (a, b) in self.spans.items():
            pieces += [data[at:a], name.encode("ascii")]
            at = b
        pieces.append(data[at:])
        return b"".join(pieces)

    def length(self, data: str) -> int:
        """The number of base64 characters of the payload ``data`` stands for."""
        span = self.spans.get(data) if data.startswith(self.tag) else None
        return len(data) if span is None else span[1] - span[0]

    def chunks(self, data: str, where: str) -> Iterator[str | bytes]:
        """The payload ``data`` (its text, or where it is in the file) in chunks."""
        span = self.spans.get(data) if data.startswith(self.tag) else None
        if span is None:
            yield from self.text_chunks(data)
            return
        for at in range(span[0], span[1], self.CHUNK):
            want = min(self.CHUNK, span[1] - at)
            try:
                chunk = os.pread(self.fd, want, at)
            except OSError as e:
                raise GraphFormatError("truncated", f"cannot read the payload: {e}", where) from e
            if len(chunk) != want:
                raise GraphFormatError(
                    "truncated", "the file became shorter while it was read", where
                )
            yield chunk

    @classmethod
    def text_chunks(cls, data: str) -> Iterator[str]:
        """A payload given as text, in chunks."""
        for i in range(0, len(data), cls.CHUNK):
            yield data[i:i + cls.CHUNK]

    def restore(self, value: Any) -> Any:
        """A JSON value with any placeholder in it replaced by its text."""
        if isinstance(value, str) and value.startswith(self.tag) and value in self.spans:
            raw = b"".join(c for c in self.chunks(value, "") if isinstance(c, bytes))
            bad = _CONTROL.search(raw)
            if bad is not None:  # as the parser would
                raise GraphFormatError(
                    "bad_json", f"invalid control character {raw[bad.start()]:#04x} in a string"
                )
            return _decode_text(raw)
        if isinstance(value, list):
            return [self.restore(v) for v in value]
        if isinstance(value, dict):
            return {k: self.restore(v) for k, v in value.items()}
        return value
