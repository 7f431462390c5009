"""
Deep linear networks on Gaussian data: exact information, no estimator
======================================================================

Saxe et al. (2018) asked whether the compression phase of Shwartz-Ziv and Tishby appears
in deep linear networks, which have no saturating units. With Gaussian inputs and linear
layers nothing needs estimating: a layer computing h = A X (A the product of its weights),
recorded as T = A X + N(0, s^2 I), has

    I(X;T) = 1/2 log2 det(I + A A' / s^2),
    I(T;Y) = 1/2 log2 det(A A' + s^2 I) - 1/2 log2 det(A Sigma_x|y A' + s^2 I),

and (I(X;T), I(T;Y)) lies under the analytic Gaussian IB curve of (X, Y)
(:func:`ibsolver.gaussian_ib`). :func:`dnn.linear.deep_linear_experiment` trains a
16-8-8-4 linear network on a random linear teacher (4 relevant inputs, 12 irrelevant ones
appended) by SGD and by full-batch GD, without and with the irrelevant inputs.

Needs the ``dnn`` extra (torch). Two studies of three seeds: about half a minute on one
CPU thread. Information in bits.
"""

import matplotlib.pyplot as plt
import torch

from dnn.linear import (deep_linear_experiment, gaussian_teacher, plot_conditions,
                        plot_irrelevant_information)

torch.set_num_threads(1)  # networks this small run fastest on one thread

teacher = gaussian_teacher(n_relevant=4, n_irrelevant=12, n_outputs=4, output_noise=0.1)
study = deep_linear_experiment(teacher, widths=(8, 8), epochs=300, lr=0.05, init_scale=0.5,
                               noise_var=1.0, seeds=(0, 1, 2))
summary = study.summary()
print(f"I(X;Y) = {summary['gaussian_ib']['mutual_information']:.3f} bit")
for layer, verdicts in summary["verdicts"].items():
    print(layer, verdicts)
print("I(T;X_irr):", summary["irrelevant_verdicts"])

# %%
# Every layer's path runs under the bound, in each of the four conditions, and none turns
# back: I(X;T) grows to its final value (by SGD and by GD alike).

fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
plot_conditions(study, axes=axes)
fig.tight_layout()

# %%
# With irrelevant inputs the total I(X;T) still rises, while the information about the
# irrelevant inputs (dashed) falls as the network learns to ignore them: compression of
# one part of the input, at the same time as fitting, not in a later phase.

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
plot_irrelevant_information(study, axes=axes)
fig.tight_layout()

# %%
# The verdict depends on the initial weights. From N(0, 1/fan_in) weights in wider layers,
# the hidden layers start far from the balanced factorisation that plain SGD's gradient
# noise (here from the label noise) slowly pulls them towards: their I(X;T) falls under SGD
# but not under GD, as the verdicts show; with almost noiseless outputs
# (``gaussian_teacher(output_noise=1e-4)``) the fall under SGD goes away too. The output
# layer's "mixed" verdicts come from its first record: the random initial network's output
# can carry more information than the fitted one (``summary()`` gives each seed's epoch of
# peak I(X;T)).

large = deep_linear_experiment(teacher, widths=(16, 16), epochs=300, lr=0.05, init_scale=1.0,
                               noise_var=1.0, seeds=(0, 1, 2))
for layer, verdicts in large.summary()["verdicts"].items():
    print(layer, verdicts)
fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
plot_conditions(large, axes=axes)
fig.tight_layout()
