"""
Usable information and Fisher information over training
========================================================

Kleinman, Achille, Idnani and Kao (2021) measure *usable* information: what a decoder of a
given family can read from a layer, I_u(Z;Y) = H(Y) - L_CE (bits), with L_CE the test
cross-entropy of a decoder q(y|z) trained on held-out activations. It is a lower bound on
I(Z;Y).

Their checkerboard task: the input is the colour of a checkerboard and the colours of
targets placed around it; the label is the direction of the target whose colour matches.
The colour is needed to solve the task, but once the direction is known it is irrelevant,
and the paper finds the network discarding it: the deeper layers keep the direction and
lose the colour, which rises early in training and then falls. Whether a curve rises then
falls differs from one initialisation to the next, so three networks are trained here,
differing only in their seed, and the fraction of them in which each curve rises then falls
(by more than 0.05 bit up and down) is stated. Alongside, the trace of the Fisher
information of the weights on 200 training inputs (critical learning periods, Achille,
Rovere and Soatto 2019).

Needs the ``dnn`` extra (torch). The paper's small network and data for 2 colours
(10-7-5-4-3, 10 000 samples), three seeds trained as one batched ensemble, 30 epochs
recorded every third, linear decoders: about 20 seconds on one CPU thread. (``ibsolver
usable`` runs five seeds with MLP decoders of the paper's architecture by default, about
two minutes.)
"""

import matplotlib.pyplot as plt
import torch

from dnn import experiments, usable
from dnn.fisher import plot_fisher_trace

# networks this small run fastest on one thread; more threads mostly wait on each other
# (ten times slower on a busy two-core machine)
torch.set_num_threads(1)

run = experiments.checkerboard_experiment(
    2, epochs=30, record_epochs=range(0, 31, 3), n_probe=2000, decoder="linear",
    fisher_samples=200, seeds=(0, 1, 2), random_state=0)
record, ensemble = run.recording, run.ensemble  # a UsableRun: run.save(path) keeps both
print(f"validation accuracy by epoch {record.epochs}, mean over seeds: "
      + " ".join(f"{a:.2f}" for a in record.test_acc.mean(axis=1)))
final = ensemble.spread()["mean"][..., -1]
rise_fall = ensemble.rise_then_fall()
for i, label in enumerate(ensemble.label_sets):
    print(f"usable {label} information after training, layer by layer "
          f"({', '.join(ensemble.layers)}), mean over seeds: "
          + " ".join(f"{b:.2f}" for b in final[i])
          + f" bit (max {ensemble.max_bits[label]:.0f}); rises then falls in "
          + " ".join(f"{v['n_rise_fall']}/{v['n_seeds']}" for v in rise_fall[label].values())
          + " seeds")
fisher_trace = record.measures["fisher_trace"].mean(axis=1)  # (epoch, seed) -> epoch
print("Fisher trace by epoch, mean over seeds: " + " ".join(f"{f:.3g}" for f in fisher_trace))

# %%
# Usable information per layer (darker = deeper) about the direction (relevant) and the
# colour (irrelevant), mean over the seeds with their range shaded, and the Fisher trace
# over the same epochs.

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
usable.plot_usable_curves(ensemble, ax=axes[0])
experiments.plot_accuracy(record, axes[0])
plot_fisher_trace(record.epochs, fisher_trace, ax=axes[1])
fig.tight_layout()
