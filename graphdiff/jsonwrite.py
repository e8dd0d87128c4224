"""Writing graphdiff's files: canonical JSON text in pieces, written atomically.

The text of a file is produced as a stream of ASCII pieces (a parameter's
base64 data as bytes, never JSON-escaped), so that a large model is never held
twice in memory; :func:`atomic_write` writes them to a temporary file in the
target's folder, fsyncs it and renames it over the target.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from typing import Any

import numpy as np

from .errors import FileError
from .jsonread import path_name
from .schema import (
    FORMAT_VERSION,
    MODEL_FORMAT,
    EdgeSpec,
    GraphSpec,
    ModelFile,
    NodeSpec,
    TensorSpec,
)

__all__: list[str] = []


def compact_json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_CHUNK = 3 << 18  # bytes encoded at a time (a multiple of 3: no padding inside)


def _tensor_text(doc: dict[str, Any]) -> Iterator[str | bytes]:
    """A parameter's tensor document, as ``compact_json`` writes it, with its base64 data
    as bytes: JSON-escaping megabytes of text that needs no escape cost more than
    the rest of a save. Data given as a (little-endian, contiguous) array is encoded
    here, a few MiB at a time. Data with any other character goes through ``compact_json``."""
    data = doc["data"]
    if isinstance(data, np.ndarray):
        head = compact_json({"dtype": doc["dtype"], "shape": doc["shape"]})[:-1] + ',"data":"'
        yield head
        flat = data.reshape(-1).view(np.uint8)
        for i in range(0, flat.size, _CHUNK):
            yield base64.b64encode(flat[i:i + _CHUNK].data)
        yield '"}'
        return
    raw = data.encode("ascii") if isinstance(data, str) and data.isascii() else None
    if raw is None or raw.translate(None, _BASE64) or list(doc) != ["dtype", "shape", "data"]:
        yield compact_json(doc)
        return
    yield compact_json({"dtype": doc["dtype"], "shape": doc["shape"]})[:-1] + ',"data":"'
    yield raw
    yield '"}'


def doc_lines(
    doc: Any, expand: set[tuple[str, ...]], path: tuple[str, ...] = ()
) -> Iterator[str | bytes]:
    """JSON text in pieces: containers at the paths in ``expand`` one item per line, the
    rest compact. Pieces, so that a large file is never held twice in memory."""
    if len(path) == 2 and path[0] == "params" and isinstance(doc, dict) and "data" in doc:
        yield from _tensor_text(doc)
        return
    if path not in expand or not isinstance(doc, (dict, list)) or not doc:
        yield compact_json(doc)
        return
    items = doc.items() if isinstance(doc, dict) else (("*", v) for v in doc)
    yield "{\n" if isinstance(doc, dict) else "[\n"
    for i, (k, v) in enumerate(items):
        yield (",\n" if i else "") + (f"{compact_json(k)}:" if isinstance(doc, dict) else "")
        yield from doc_lines(v, expand, (*path, k))
    yield "\n}" if isinstance(doc, dict) else "\n]"


def tensor_doc(t: TensorSpec, array: np.ndarray | None = None) -> dict[str, Any]:
    """A tensor's document; its data is ``array`` (encoded while writing) if given."""
    return {"dtype": t.dtype, "shape": list(t.shape), "data": t.data if array is None else array}


def _item_doc(item: NodeSpec | EdgeSpec) -> dict[str, Any]:
    doc: dict[str, Any] = (
        {"id": item.id} if isinstance(item, NodeSpec)
        else {"source": item.source, "target": item.target}
    )
    if isinstance(item, EdgeSpec) and item.key is not None:
        doc["key"] = item.key
    if item.attrs:
        doc["attrs"] = dict(item.attrs)
    if item.arrays:
        doc["arrays"] = {k: tensor_doc(t) for k, t in item.arrays.items()}
    return doc


def graph_doc(g: GraphSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {"directed": True, "multigraph": g.multigraph}
    if g.attrs:  # the graph's own attributes, written only when there are some
        doc["attrs"] = dict(g.attrs)
    if g.arrays:
        doc["arrays"] = {k: tensor_doc(t) for k, t in g.arrays.items()}
    doc["nodes"] = [_item_doc(n) for n in g.nodes]
    doc["edges"] = [_item_doc(e) for e in g.edges]
    return doc


def model_text(
    spec: ModelFile, arrays: Mapping[str, np.ndarray] | None = None
) -> Iterator[str | bytes]:
    """A model file's text; ``arrays``: the parameters' data (see ``tensor_doc``)."""
    arrays = arrays or {}
    doc = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "loss": spec.loss,
        **({} if spec.dtype == "float64" else {"dtype": spec.dtype}),
        "graph": graph_doc(spec.graph),
        "params": None if spec.params is None
        else {k: tensor_doc(t, arrays.get(k)) for k, t in spec.params.items()},
        "ops": {k: p.model_dump() for k, p in spec.ops.items()},
    }
    expand = {(), ("graph",), ("graph", "nodes"), ("graph", "edges"), ("params",), ("ops",)}
    yield from doc_lines(doc, expand)
    yield "\n"


# Temporary files are named ".<name>.graphdiff-<random>.tmp" next to the file they
# replace. One left behind by a save that was killed is removed by a later save of
# the same file once nothing has written to it for this long; a live one never is.
STALE_SECONDS = 3600


def atomic_write(path: str | os.PathLike[str], text: Iterable[str | bytes]) -> None:
    """Write ``text`` (ASCII pieces, str or bytes) to ``path`` so that a crash leaves
    either the old or the new file.

    A temporary file of its own, in the folder of the file written, is written,
    fsynced and renamed over that file, then the folder is fsynced. Concurrent
    saves to one path all succeed; the last rename wins. A symbolic link is
    followed: the file it points to is replaced (the link stays a link). Every
    failure is a :class:`~graphdiff.errors.FileError` naming ``path``; the
    previous file is then unchanged and no temporary file is left.
    """
    name = path_name(path)
    try:
        target = _target(name)
        folder, base = os.path.split(target)
        prefix, suffix = f".{base}.graphdiff-", ".tmp"
        _remove_stale(folder, prefix, suffix)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        try:
            try:
                os.fchmod(fd, _file_mode(target))
                chunk: list[str] = []
                size = 0
                for piece in text:  # written in chunks of about 1 MiB
                    if isinstance(piece, bytes):  # ASCII already: written as it is
                        _write_all(fd, "".join(chunk).encode("ascii"))
                        _write_all(fd, piece)
                        chunk, size = [], 0
                        continue
                    chunk.append(piece)
                    size += len(piece)
                    if size >= 1 << 20:
                        _write_all(fd, "".join(chunk).encode("ascii"))
                        chunk, size = [], 0
                _write_all(fd, "".join(chunk).encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        if isinstance(e, FileError):
            raise
        raise FileError(f"cannot write {name!r}: {e.strerror or e}", name, e.errno) from e


def _target(name: str) -> str:
    """The regular file that saving to ``name`` replaces: ``name`` itself or, through
    symbolic links, the file they point to (which need not exist yet)."""
    if name.endswith(os.sep) or (os.altsep and name.endswith(os.altsep)):
        raise FileError(
            f"cannot write {name!r}: it names a folder (ends with {name[-1]!r}); "
            "give a file name", name, errno.EISDIR,
        )
    target = os.path.realpath(name)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    if stat.S_ISDIR(mode):
        raise FileError(f"cannot write {name!r}: it is a directory", name, errno.EISDIR)
    if not stat.S_ISREG(mode):
        raise FileError(
            f"cannot write {name!r}: it is not a regular file (a FIFO, device or socket)",
            name,
        )
    return target


def check_writable(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, a path that a save could not write: one
    :func:`atomic_write` refuses, or whose folder does not take a new file (a
    temporary file is made there and removed). Raises
    :class:`~graphdiff.errors.FileError` naming ``path``."""
    name = path_name(path)
    try:
        folder = os.path.dirname(_target(name))
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(name)}.graphdiff-", suffix=".tmp",
                                   dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        if isinstance(e, FileError):
            raise
        raise FileError(f"cannot write {name!r}: {e.strerror or e}", name, e.errno) from e


def _remove_stale(folder: str, prefix: str, suffix: str) -> None:
    """Remove temporary files of this library's naming for this file that nothing
    has written to for STALE_SECONDS (left by saves that were killed)."""
    now = time.time()
    for other in os.listdir(folder):
        if other.startswith(prefix) and other.endswith(suffix):
            full = os.path.join(folder, other)
            with suppress(OSError):  # another save may have removed it
                st = os.lstat(full)
                if stat.S_ISREG(st.st_mode) and now - st.st_mtime > STALE_SECONDS:
                    os.unlink(full)


def _file_mode(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- public API: models --------------------------------------------------------------
