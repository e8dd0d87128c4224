"""Training progress: a bar on a terminal or in a notebook, and a line per epoch in logs.

Everything graphdiff reports that is not a result goes through the
``logging`` module, under the logger ``"graphdiff"`` (and its children
``graphdiff.train``, ``graphdiff.distributed``, ``graphdiff.registry``):
epochs as :func:`graphdiff.fit` finishes them, checkpoints written, Dask
steps resubmitted, plugins loaded. graphdiff attaches no handler of its own
(a :class:`logging.NullHandler`), so nothing shows until the program
configures logging, e.g. ``logging.basicConfig(level=logging.INFO)``.

>>> import logging, graphdiff
>>> logging.getLogger("graphdiff").handlers
[<NullHandler (NOTSET)>]
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import TextIO

__all__ = ["Progress", "in_notebook"]

log = logging.getLogger("graphdiff.train")


def in_notebook() -> bool:
    """Is this a Jupyter kernel (where stderr is no terminal, but ``\\r`` redraws a line)?"""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def epoch_text(row: Mapping[str, float], total: int) -> str:
    """``epoch 3/10  loss 0.25  acc 95.0%  val_loss 0.3``: one epoch's row, for people."""
    text = f"epoch {int(row['epoch'])}/{total}"
    if row.get("loss") is not None:  # not evaluated in every epoch with evaluate_every
        text += f"  loss {row['loss']:.4g}"
    if row.get("accuracy") is not None:
        text += f"  acc {row['accuracy']:.1%}"
    if row.get("val_loss") is not None:
        text += f"  val_loss {row['val_loss']:.4g}"
    if row.get("val_accuracy") is not None:
        text += f"  val_acc {row['val_accuracy']:.1%}"
    return text


class Progress:
    """One ``\\r``-updated line on ``stream`` (if any), and a log record every ``every`` epochs.

    The bar redraws at most ten times a second, and at the last epoch; the
    log gets epochs ``every``, ``2·every``, ... and the last one, at INFO on
    ``graphdiff.train``.
    """

    def __init__(self, total: int, stream: TextIO | None, every: int = 1) -> None:
        self.total = total
        self.stream = stream
        self.every = every
        self.start = time.perf_counter()
        self.shown = 0.0
        self.width = 0

    def update(self, row: Mapping[str, float], steps: int, final: bool = False) -> None:
        now = time.perf_counter()
        rate = f"  {steps / max(now - self.start, 1e-9):.0f} steps/s"
        if (int(row["epoch"]) % self.every == 0 or final) and log.isEnabledFor(logging.INFO):
            log.info("%s%s", epoch_text(row, self.total), rate)
        if self.stream is None or (now - self.shown < 0.1 and not final):
            return
        self.shown = now
        text = epoch_text(row, self.total) + rate
        self.stream.write("\r" + text.ljust(self.width))
        self.width = len(text)
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.width:
            self.stream.write("\n")
            self.stream.flush()
