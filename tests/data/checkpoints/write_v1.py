"""Writes the per-name checkpoints of this folder (the format before parameters and
optimizer state were stored as vectors, issue 12), for tests/test_checkpoint_formats.py.

They were written with graphdiff at commit ebdb4a0 (the last one writing that format):

    git archive ebdb4a0 | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python tests/data/checkpoints/write_v1.py

Running it with a later graphdiff writes the current format instead, so keep the files.
"""

from __future__ import annotations

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent.parent))  # tests/, for the shared setting

import graphdiff  # noqa: E402
from test_checkpoint_formats import CASES, case  # noqa: E402

if __name__ == "__main__":
    print("graphdiff from", graphdiff.__file__)
    for name in CASES:
        net, p0, data, make_opt, kw = case(name)
        graphdiff.fit(net, p0, data, optimizer=make_opt(), epochs=2,
                      checkpoint=here / f"v1_{name}.ckpt", **kw)
