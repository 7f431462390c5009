"""
Your own network on the information plane
=========================================

:func:`dnn.record_training` takes any ``nn.Module`` and any ``DataLoader``: here a small
network with a skip connection (not an ``nn.Sequential``) learns the 12-bit task of
Shwartz-Ziv and Tishby, with noisy labels so that the task has a true IB curve
(:func:`dnn.tasks.tishby12`, ``noise=2``: p(y=1|x) a sigmoid of the rule's margin). The
probe is the whole input set with its exact joint p(x, y), so every recorded layer, binned,
is an encoder of X and must lie under the exact bound from :func:`ibsolver.ib_curve`.

The seeds train by plain SGD, whose gradient statistics show the drift and diffusion
phases of Shwartz-Ziv and Tishby: at the end, each layer's gradient signal-to-noise ratio
against epoch, and the epoch where it falls below 1 for good beside the layer's onset of
compression.

Needs the ``dnn`` extra (torch). 150 epochs, three seeds trained together, 20 records:
under half a minute on one CPU thread. Information in bits.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dnn
import ibsolver
from dnn.infoplane import check_below_bound, gradient_phases, plot_gradient_stats, plot_infoplane
from dnn.tasks import tishby12
from dnn.train import stratified_split

# networks this small run fastest on one thread; more threads mostly wait on each other
torch.set_num_threads(1)

task = tishby12(noise=2.0, random_state=0)
x, y = torch.from_numpy(task.x), torch.from_numpy(task.labels)
train_idx, test_idx = stratified_split(task.labels, 0.8, 0)

# %%
# The network: any module whose forward returns class logits. Its activations are
# submodules, so that forward hooks see them: ``act1`` and ``act2`` are recorded, and the
# logits ``head`` through a softmax.


class SkipNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.act1 = nn.Linear(12, 10), nn.Tanh()
        self.code, self.skip, self.act2 = nn.Linear(10, 4), nn.Linear(12, 4), nn.Tanh()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = self.act1(self.hidden(x))
        return self.head(self.act2(self.code(h) + self.skip(x)))


# every seed sees the DataLoader's minibatches; its own generator draws its initial weights.
# The default binning reads each recorded layer's range from its module: the two Tanh
# layers get 30 bins per unit over (-1, 1), the softmax output 30 over (0, 1), the same
# bins at every epoch (a ReLU layer would get bins of fixed width 2/30).
loader = DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=64, shuffle=True,
                    generator=torch.Generator().manual_seed(0))
rec = dnn.record_training(SkipNet(), loader, layers=["act1", "act2", "head"],
                          transforms={"head": "softmax"}, probe=(task.x, task.p_xy),
                          test_data=(x[test_idx], y[test_idx]), epochs=150, seeds=[0, 1, 2],
                          optimizer="sgd", lr=0.03, n_records=20, n_threads=1)
print(rec.knobs("binning")["bounds"])

# %%
# The bound: the exact IB curve of the probe's p(x, y), computed once for every layer.

curve = ibsolver.ib_curve(rec.p_xy, max_points=600, n_threads=1)
check = check_below_bound(rec, curve)
print(f"I(X;Y) = {curve.i_xy:.4f} bit; test accuracy after {rec.epochs[-1]} epochs: "
      + " ".join(f"{a:.3f}" for a in rec.test_acc[-1]))
print(f"every binned point under the bound: {check.ok}")

# %%
# Each layer's trajectory, the mean over the seeds coloured by epoch (bars: one standard
# deviation), against the bound with its phase transitions. With 30 fixed bins per unit the
# ten-unit first layer keeps every input apart (log2 4096 = 12 bits: saturated, so its
# estimate can say nothing more) and the four-unit code almost every one; the two-unit
# softmax output keeps 3 to 4 bits of X after a peak near epoch 11. Every point lies under
# the bound.

ax = plot_infoplane(rec, curve)
ax.figure.set_size_inches(8, 5.5)

# %%
# The gradients of each parametrised layer over each recorded epoch's 52 minibatches
# (``rec.grad_n_batches``): the norm of their mean (solid) and the norm of their standard
# deviation (dashed), averaged over the seeds, on log-log axes as in Shwartz-Ziv and
# Tishby's figure. Where the mean dominates, SGD drifts; where the fluctuations do (the
# ratio below 1), it diffuses. Here the hidden layers' fluctuations dominate from the first
# epoch on; the head's mean gradient grows to pass its fluctuations near epoch 10, then
# falls below them for good. That epoch, the phase change, is printed beside the onset of
# the layer's compression (its peak I(X;T)), per seed. Whether the two coincide is a
# finding of the run, not a given.

ax = plot_gradient_stats(rec)
ax.figure.set_size_inches(8, 5.5)
for layer, phases in gradient_phases(rec).items():
    print(f"{layer} ({phases['grad_layer']}): {phases['statement']}")
