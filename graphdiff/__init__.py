"""graphdiff: backpropagation on any graph you can draw.

Draw a network as a networkx DAG, neuron by neuron or op by op, compile it,
and get the loss, every node's delta and every parameter's gradient.
"""

import logging

from .baselines import NearestMean, Perceptron
from .build import LECTURE_EDGES, LECTURE_SHARED, lecture_network, mlp, write_params
from .compile import GraphWarning, compile
from .data import DataError, blobs, circles, feed, load_data, moons, spirals, xor
from .distributed import ClusterError, DaskMissingError
from .errors import (
    CycleError,
    FileError,
    GraphdiffError,
    GraphError,
    InputError,
    NonFiniteError,
    OpContractError,
    RegistryError,
    ShapeError,
    TargetError,
    UnknownOpError,
)
from .io import (
    Checkpoint,
    GraphFormatError,
    LoadLimits,
    from_spec,
    load,
    load_checkpoint,
    load_model,
    load_params,
    save,
    save_checkpoint,
    save_params,
    to_spec,
)
from .network import BackwardResult, Network
from .numgrad import GradcheckReport, gradcheck
from .optim import SGD, Adam, Optimizer, Schedule
from .params import Grads, Params
from .predict import evaluate
from .registry import NoAttrs, Op, elementwise_op, get_op, list_ops, register_op, unregister_op
from .schema import __version__ as __version__
from .train import FitResult, TrainingDivergedError, fit
from .viz import (
    VizError,
    draw_network,
    plot_decision_boundary,
    plot_diagnostics,
    plot_history,
    predictor,
)

logging.getLogger("graphdiff").addHandler(logging.NullHandler())  # the program decides

__all__ = [
    "LECTURE_EDGES",
    "LECTURE_SHARED",
    "SGD",
    "Adam",
    "BackwardResult",
    "Checkpoint",
    "ClusterError",
    "CycleError",
    "DaskMissingError",
    "DataError",
    "FileError",
    "FitResult",
    "GradcheckReport",
    "Grads",
    "GraphError",
    "GraphFormatError",
    "GraphWarning",
    "GraphdiffError",
    "InputError",
    "LoadLimits",
    "NearestMean",
    "Network",
    "NoAttrs",
    "NonFiniteError",
    "Op",
    "OpContractError",
    "Optimizer",
    "Params",
    "Perceptron",
    "RegistryError",
    "Schedule",
    "ShapeError",
    "TargetError",
    "TrainingDivergedError",
    "UnknownOpError",
    "VizError",
    "blobs",
    "circles",
    "compile",
    "draw_network",
    "elementwise_op",
    "evaluate",
    "feed",
    "fit",
    "from_spec",
    "get_op",
    "gradcheck",
    "lecture_network",
    "list_ops",
    "load",
    "load_checkpoint",
    "load_data",
    "load_model",
    "load_params",
    "mlp",
    "moons",
    "plot_decision_boundary",
    "plot_diagnostics",
    "plot_history",
    "predictor",
    "register_op",
    "save",
    "save_checkpoint",
    "save_params",
    "spirals",
    "to_spec",
    "unregister_op",
    "write_params",
    "xor",
]
