"""The same network neuron-wise and layer-wise: the slides' matrix formulation.

graphdiff.mlp draws a 3-4-4-1 tanh network twice: in neuron notation (one
node per neuron, one weight per edge, the lecture's drawings) and in op
notation (per layer z = a W + b, a = g(z), with matmul and add ops). With
W{l}[j, k] set to the weight of the edge from neuron j of layer l-1 to
neuron k of layer l, both give the same loss and the same gradients.

The slides' matrix formulas are then evaluated by hand with numpy over a
batch of N points (matrix-matrix products, the "further vectorization"):
Δ^(l-1) = (g'(Z^(l)) ⊙ Δ^(l)) Wᵀ and ∂E/∂W = A^(l-1)ᵀ (g'(Z^(l)) ⊙ Δ^(l)),
from the neuron-wise network's values, and compared with its neuron-wise
δ_j = Σ_k δ_k g'(z_k) w_jk and ∂E/∂w_jk = Σ_points δ_k g'(z_k) a_j.

Prints the largest difference for the loss, the gradients and, layer by
layer, the δs and ∂E/∂W.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import graphdiff


def neuron(layer: int, k: int, sizes: list[int]) -> str:
    """graphdiff.mlp's neuron-notation name of unit k (1-based) of a layer."""
    if layer == 0:
        return f"x{k}"
    if layer < len(sizes) - 1:
        return f"h{layer}_{k}"
    return "y" if sizes[-1] == 1 else f"y{k}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Neuron-wise vs layer-wise.")
    parser.add_argument("--fast", action="store_true", help="fewer data points")
    args = parser.parse_args(argv)
    sizes = [3, 4, 4, 1]
    n = 5 if args.fast else 50
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(n, sizes[0])), "t": rng.choice([-1.0, 1.0], size=n)}

    by_neuron = graphdiff.compile(graphdiff.mlp(sizes, "tanh"), loss="E")
    by_layer = graphdiff.compile(graphdiff.mlp(sizes, "tanh", notation="op"), loss="E")
    layer_params = by_layer.init_params(seed=1)
    layer_params = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in layer_params.items()}
    # W{l}[j, k] is the weight of the edge from unit j+1 of layer l-1 to unit k+1 of layer l
    neuron_params: dict[str, Any] = {}
    for layer in range(1, len(sizes)):
        W, b = layer_params[f"W{layer}"], layer_params[f"b{layer}"]
        for k in range(sizes[layer]):
            to = neuron(layer, k + 1, sizes)
            neuron_params[f"{to}.bias"] = b[k]
            for j in range(sizes[layer - 1]):
                neuron_params[f"{neuron(layer - 1, j + 1, sizes)}->{to}"] = W[j, k]
    assert sorted(neuron_params) == sorted(by_neuron.params)

    rn = by_neuron.backward(neuron_params, graphdiff.feed(by_neuron, data), deltas=True)
    rl = by_layer.backward(layer_params, graphdiff.feed(by_layer, data), deltas=True)
    loss_diff = abs(float(rn.loss - rl.loss))
    grad_diff = 0.0
    for layer in range(1, len(sizes)):
        for k in range(sizes[layer]):
            to = neuron(layer, k + 1, sizes)
            grad_diff = max(grad_diff, abs(rn.grads[f"{to}.bias"] - rl.grads[f"b{layer}"][k]))
            for j in range(sizes[layer - 1]):
                g = rn.grads[f"{neuron(layer - 1, j + 1, sizes)}->{to}"]
                grad_diff = max(grad_diff, abs(g - rl.grads[f"W{layer}"][j, k]))
    print(f"3-4-4-1 tanh network, logistic loss, {n} data points")
    print(f"neuron notation ({len(by_neuron.params)} scalar parameters) vs op notation "
          f"({len(by_layer.params)} tensor parameters):")
    print(f"  loss {float(rn.loss):.12f} vs {float(rl.loss):.12f}, difference {loss_diff:.1e}")
    print(f"  largest gradient difference over all weights and biases: {grad_diff:.1e}")

    # The slides' matrix formulation, by hand, from the neuron-wise network's values.
    def stack(values: dict[Any, np.ndarray], layer: int) -> np.ndarray:
        return np.column_stack([values[neuron(layer, k + 1, sizes)]
                                for k in range(sizes[layer])])

    print("layer by layer (matrix formulas by hand vs neuron-wise δ and gradients):")
    matrix_diff = 0.0
    for layer in range(len(sizes) - 1, 0, -1):
        W = layer_params[f"W{layer}"]
        Z = stack(rn.z, layer)
        g_prime = 1.0 - np.tanh(Z) ** 2 if layer < len(sizes) - 1 else np.ones_like(Z)
        local = g_prime * stack(rn.deltas, layer)                  # g'(Z) ⊙ Δ, shape (N, d_l)
        dW = stack(rn.values, layer - 1).T @ local                 # Aᵀ (g' ⊙ Δ), summed over N
        neuron_dW = np.array([[rn.grads[f"{neuron(layer - 1, j + 1, sizes)}->"
                                        f"{neuron(layer, k + 1, sizes)}"]
                               for k in range(sizes[layer])] for j in range(sizes[layer - 1])])
        diffs = [float(np.max(np.abs(dW - neuron_dW)))]
        if layer > 1:  # the inputs' δ are not a layer of neurons
            delta_prev = local @ W.T                               # (g' ⊙ Δ) Wᵀ
            diffs.append(float(np.max(np.abs(delta_prev - stack(rn.deltas, layer - 1)))))
            diffs.append(float(np.max(np.abs(delta_prev - rl.deltas[f"a{layer - 1}"]))))
        matrix_diff = max(matrix_diff, *diffs)
        shown = f"∂E/∂W{layer} {diffs[0]:.1e}"
        if layer > 1:
            shown += (f", Δ^({layer - 1}) {diffs[1]:.1e} (neuron-wise), {diffs[2]:.1e} "
                      f"(op notation's node a{layer - 1})")
        print(f"  layer {layer}: {shown}")
    same = max(loss_diff, grad_diff, matrix_diff) < 1e-12
    print("neuron-wise and layer-wise are " + ("identical (to rounding)" if same else "DIFFERENT"))
    return {"loss_diff": loss_diff, "grad_diff": grad_diff, "matrix_diff": matrix_diff}


if __name__ == "__main__":
    main()
