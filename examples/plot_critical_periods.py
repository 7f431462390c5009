"""
Critical learning periods
=========================

Achille, Rovere and Soatto (2019) blur a network's training images for its first e epochs,
then train it on the clean images for a fixed number of epochs more. In their networks a
deficit removed early costs nothing, while one removed late leaves a network that never
reaches the accuracy of one trained on clean images from the start, as a kitten deprived of
sight early in life never fully recovers. Over the same training the trace of the Fisher
information of the weights rises, then falls: the weights first take in information about
the data, then shed it.

:func:`dnn.periods.critical_periods` runs this on scikit-learn's 8 x 8 digits with an MLP:
blur by 4 x 4 block means (the paper's factor), plain SGD whose learning rate falls by 0.97
every epoch (the paper's schedule). The same runs with a constant learning rate are the
control: is the accuracy lost to a late removal the network's, or the annealed rate's?

Needs the ``dnn`` extra (torch). Two seeds, removal at epochs 0, 10 and 30, then 20 clean
epochs: about half a minute on one CPU thread.
"""

import matplotlib.pyplot as plt
import torch

from dnn.periods import critical_periods, plot_critical_accuracy, plot_critical_fisher

# networks this small run fastest on one thread
torch.set_num_threads(1)

common = dict(removal_epochs=(0, 10, 30), epochs_after=20, seeds=(0, 1), fisher_samples=50)
runs = {"annealed (0.97 per epoch)": critical_periods(**common),
        "constant learning rate": critical_periods(**common, lr_decay=1.0)}
for name, result in runs.items():
    print(f"{name}: final test accuracy (mean over seeds) by deficit")
    for r in result.summary()["runs"]:
        print(f"  {r['label']:>14}: {r['final_test_acc']['mean']:.3f}, Fisher trace peak "
              f"{r['fisher_trace']['peak']:.3g} at epoch {r['fisher_trace']['peak_epoch']}")

# %%
# Final test accuracy against the epoch the deficit is removed, with the annealed and the
# constant learning rate, and the Fisher trace over training (annealed runs).

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for ax, (name, result) in zip(axes, runs.items()):
    plot_critical_accuracy(result, ax=ax)
    ax.set_title(name, fontsize=9)
    ax.set_ylim(0.2, 1.0)
plot_critical_fisher(runs["annealed (0.97 per epoch)"], ax=axes[2])
fig.tight_layout()
