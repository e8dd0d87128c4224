"""graphdiff's benchmark suite: run it with ``python -m benchmarks`` (``--help`` for options).

Workloads (issue 4): W1/W2 the lecture's 7-neuron net (one point, 100,000
points), W3 a 2-256-256-1 MLP training step in op notation, W4 a 2-32-32-1 MLP
drawn neuron by neuron, W5 gradient/forward scaling and numerical
differentiation, W6 model files, Compile of a 100,000-node graph, and the peak
memory of a W3 step. Each compares graphdiff with hand-written numpy (and
PyTorch / JAX when installed) after checking they compute the same numbers.
"""
