"""graphdiff's standard op library; importing it registers every op.

Installed as ``graphdiff.ops``. Each family is one module, forward and local
derivative side by side, registered through :func:`graphdiff.register_op`
like any third-party op:

- ``elementwise``: identity, neg, exp, log, sqrt, abs, sign, step, square,
  tanh, sigmoid, softplus, relu (``shift``), sin (``scale``), pow (``exponent``)
- ``arithmetic``: add, sub, mul, div (numpy broadcasting)
- ``linalg``: matmul
- ``reduce``: sum, mean (``axis``, ``keepdims``)
- ``shape``: stack, concat, index, reshape
- ``softmax``: softmax (``axis``)
- ``loss``: hinge (``margin``), logistic, squared_error, softmax_cross_entropy

Axis 0 is the data-point axis everywhere; ``axis`` attributes count it.
"""

# Relative imports: ruff resolves them to the top-level `ops` it bans, a false positive.
from . import arithmetic, elementwise, linalg, loss, reduce, shape, softmax

__all__ = ["arithmetic", "elementwise", "linalg", "loss", "reduce", "shape", "softmax"]
