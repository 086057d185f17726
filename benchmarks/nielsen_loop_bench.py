"""The vectorised NumPy network (`nlplab.scratch.network`) against the book's per-example loop.

`LoopNetwork` below is the same sigmoid network trained the way the book's `network.py` does it: for every
example of a mini-batch, backprop one column vector (784, 1) through the four equations and add its nablas to
running sums, then step w ← w − (η/m) Σ ∂Cₓ/∂w. `Network` does the same step with one matrix product per layer
for the whole mini-batch. Both start from the same weights and draw the same mini-batch order (a copy of the
network's generator), so they follow the same trajectory up to rounding; the epochs take turns (vectorised,
loop, vectorised, ...) so that load from other jobs hits both alike. Rung 1 of the ladder: quadratic cost,
η = 3.0, mini-batch 10 (the book's; 100 as well, where the vectorised form gains more), 50,000 MNIST training images;
accuracy on the 10,000 test images. BLAS runs on one thread (set before NumPy loads), so both sides use one core.

    python benchmarks/nielsen_loop_bench.py        # [784, 30, 10] and [784, 100, 10], mini-batch 10 and 100, 1 epoch
    python benchmarks/nielsen_loop_bench.py --hidden 30 --batch 10 --epochs 2 --out /tmp/loop
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import sys
import time
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import numpy as np  # noqa: E402
from common import RESULTS, git_commit, machine, write_result

from nlplab.data.mnist import load_mnist
from nlplab.scratch.network import Network, one_hot, sigmoid, sigmoid_prime


class LoopNetwork:
    """Per-example backprop, as the book's network.py: biases (n_out, 1), weights (n_out, n_in), quadratic cost."""

    def __init__(self, net: Network) -> None:
        self.weights = [w.copy() for w in net.weights]
        self.biases = [b.copy() for b in net.biases]
        self.rng = copy.deepcopy(net.rng)

    def backprop(self, x: np.ndarray, y: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(∂Cₓ/∂b, ∂Cₓ/∂w) of one example: x (n_in, 1), y (n_out, 1), Cₓ = ½‖aᴸ − y‖²."""
        activations, zs = [x], []
        for b, w in zip(self.biases, self.weights):
            zs.append(w @ activations[-1] + b)
            activations.append(sigmoid(zs[-1]))
        delta = (activations[-1] - y) * sigmoid_prime(zs[-1])
        nabla_b, nabla_w = [delta], [delta @ activations[-2].T]
        for layer in range(2, len(self.weights) + 1):
            delta = (self.weights[-layer + 1].T @ delta) * sigmoid_prime(zs[-layer])
            nabla_b.insert(0, delta)
            nabla_w.insert(0, delta @ activations[-layer - 1].T)
        return nabla_b, nabla_w

    def epoch(self, x: np.ndarray, y: np.ndarray, mini_batch_size: int, eta: float) -> None:
        """One epoch of SGD on columns x (n_in, n), y (n_out, n), one example at a time inside each mini-batch."""
        order = self.rng.permutation(x.shape[1])
        for k in range(0, len(order), mini_batch_size):
            batch = order[k:k + mini_batch_size]
            sum_b = [np.zeros_like(b) for b in self.biases]
            sum_w = [np.zeros_like(w) for w in self.weights]
            for j in batch:
                nabla_b, nabla_w = self.backprop(x[:, j:j + 1], y[:, j:j + 1])
                sum_b = [s + nb for s, nb in zip(sum_b, nabla_b)]
                sum_w = [s + nw for s, nw in zip(sum_w, nabla_w)]
            self.biases = [b - eta / len(batch) * s for b, s in zip(self.biases, sum_b)]
            self.weights = [w - eta / len(batch) * s for w, s in zip(self.weights, sum_w)]


def compare(hidden: int, batch: int, epochs: int, seed: int, train: tuple[np.ndarray, np.ndarray],
            test: tuple[np.ndarray, np.ndarray]) -> dict[str, object]:
    vectorised = Network([784, hidden, 10], cost="quadratic", init="large", seed=seed)
    loop = LoopNetwork(vectorised)
    x, y = train[0].T.astype(float), one_hot(train[1], 10)
    times: dict[str, list[float]] = {"vectorised": [], "loop": []}
    for _ in range(epochs):
        times["vectorised"] += vectorised.sgd(train, 1, batch, 3.0, monitor=[])["seconds"]
        start = time.perf_counter()
        loop.epoch(x, y, batch, 3.0)
        times["loop"].append(time.perf_counter() - start)
    looped = Network([784, hidden, 10], cost="quadratic", init="large")
    looped.weights, looped.biases = loop.weights, loop.biases
    vec_s, loop_s = (float(np.median(times[k])) for k in ("vectorised", "loop"))
    return {"sizes": [784, hidden, 10], "mini_batch": batch, "epochs": epochs, "vectorised_s_per_epoch": round(vec_s, 3),
            "loop_s_per_epoch": round(loop_s, 3), "speedup": round(loop_s / vec_s, 2),
            "vectorised_test_accuracy": vectorised.accuracy(test), "loop_test_accuracy": looped.accuracy(test),
            "max_weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(vectorised.weights, loop.weights))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[30, 100])
    parser.add_argument("--batch", type=int, nargs="+", default=[10, 100], help="mini-batch sizes (the book: 10)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=10.0, help="speed-up the vectorised network should reach")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started, t0, load_start = datetime.datetime.now(datetime.timezone.utc), time.perf_counter(), os.getloadavg()[0]
    mnist = load_mnist()
    train, test = (mnist.train.x, mnist.train.y), (mnist.test.x, mnist.test.y)
    results = [compare(h, m, args.epochs, args.seed, train, test) for h in args.hidden for m in args.batch]
    wall = time.perf_counter() - t0
    command = "python benchmarks/nielsen_loop_bench.py " + " ".join(sys.argv[1:])
    payload = {"benchmark": "nielsen_loop", "command": command.strip(), "date": started.isoformat(timespec="seconds"),
               "wall_seconds": round(wall, 1), "machine": machine(), "commit": git_commit(), "seed": args.seed,
               "target_speedup": args.target, "results": results,
               "meets_target": all(r["speedup"] >= args.target for r in results)}
    lines = [f"# Vectorised NumPy network vs the book's per-example loop ({started:%Y-%m-%d})", "",
             f"`{command.strip()}`", "",
             (f"{payload['machine']['cpu']}, {payload['machine']['cores']} cores, numpy {np.__version__}, BLAS on 1 thread; rung 1 of "
             f"the ladder (quadratic cost, η = 3.0, 50,000 images; the book's mini-batch is 10), same initial weights and "
             f"mini-batch order, epochs taking turns; median seconds per epoch over {args.epochs} epoch(s); wall "
             f"time {wall:.0f} s; 1-min load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end "
             f"(the machine is shared with other jobs). Target: ≥ {args.target:g}× faster at the same accuracy."), "",
             ("| network | mini-batch | loop (s/epoch) | vectorised (s/epoch) | speed-up | loop test acc. | vectorised test acc. "
             "| max \\|Δw\\| |"), "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['sizes']} | {r['mini_batch']} | {r['loop_s_per_epoch']:.2f} | {r['vectorised_s_per_epoch']:.2f} | {r['speedup']:.1f}× "
              f"| {100 * r['loop_test_accuracy']:.2f}% | {100 * r['vectorised_test_accuracy']:.2f}% "
              f"| {r['max_weight_difference']:.1e} |" for r in results]
    lines += ["", (f"Target {'met' if payload['meets_target'] else 'NOT met'} for "
              f"{'every size' if payload['meets_target'] else 'some sizes (see the speed-up column)'}."), ""]
    write_result("nielsen_loop", payload, "\n".join(lines), args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
