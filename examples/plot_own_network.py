"""
Your own network on the information plane
=========================================

:func:`dnn.record_training` takes any ``nn.Module`` and any ``DataLoader``: here a small
network with a skip connection (not an ``nn.Sequential``) learns the 12-bit task of
Shwartz-Ziv and Tishby, with noisy labels so that the task has a true IB curve
(:func:`dnn.tasks.tishby12`, ``noise=2``: p(y=1|x) a sigmoid of the rule's margin). The
probe is the whole input set with its exact joint p(x, y), so every recorded layer, binned,
is an encoder of X and must lie under the exact bound from :func:`ibsolver.ib_curve`.

Needs the ``dnn`` extra (torch). 150 epochs, three seeds trained together, 20 records:
under half a minute on one CPU thread. Information in bits.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dnn
import ibsolver
from dnn.estimators import Binning
from dnn.infoplane import check_below_bound, plot_infoplane
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


# every seed sees the DataLoader's minibatches; its own generator draws its initial weights
loader = DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=64, shuffle=True,
                    generator=torch.Generator().manual_seed(0))
rec = dnn.record_training(SkipNet(), loader, layers=["act1", "act2", "head"],
                          transforms={"head": "softmax"}, probe=(task.x, task.p_xy),
                          test_data=(x[test_idx], y[test_idx]), epochs=150, seeds=[0, 1, 2],
                          n_records=20, estimators=[Binning(10)], n_threads=1)

# %%
# The bound: the exact IB curve of the probe's p(x, y), computed once for every layer.

curve = ibsolver.ib_curve(rec.p_xy, max_points=600, n_threads=1)
check = check_below_bound(rec, curve)
print(f"I(X;Y) = {curve.i_xy:.4f} bit; test accuracy after {rec.epochs[-1]} epochs: "
      + " ".join(f"{a:.3f}" for a in rec.test_acc[-1]))
print(f"every binned point under the bound: {check.ok}")

# %%
# Each layer's trajectory, the mean over the seeds coloured by epoch (bars: one standard
# deviation), against the bound with its phase transitions. Binned in 10 bins per unit, the
# first layer keeps almost every input apart (near log2 4096 = 12 bits); the four-unit code
# and the two-unit softmax output keep less of X, and every point lies under the bound.

ax = plot_infoplane(rec, curve)
ax.figure.set_size_inches(8, 5.5)
