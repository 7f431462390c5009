"""Usable information (Kleinman, Achille, Idnani & Kao, ICLR 2021), in bits.

    I_u(Z; Y) = H(Y) - L_CE

where L_CE is the cross-entropy, in bits, of a decoder q(y|z) trained on one split of the
(z, y) pairs and evaluated on a separate, held-out split. Since L_CE >= H(Y|Z) for any
decoder (appendix A.1 of the paper), I_u <= I(Z; Y): it is the information a decoder of the
given family *and training budget* can extract. A linear decoder measures linearly usable
information; the MLP decoder (3 hidden layers of 128, 64, 32 units, LeakyReLU 0.2,
batch-norm, dropout; appendix B.3) more. The number therefore only means something together
with the decoder and its budget, which every result carries.

Clipping. An uninformative Z gives a held-out L_CE slightly *above* H(Y) (the decoder
overfits the training split), so the raw difference can be negative. As in the paper
(fig. 12 caption), ``value = max(raw, 0)``; the raw number and whether it was clipped are
reported alongside.

H(Y) is, by default, the plug-in entropy of the labels of the held-out split (so that a
decoder predicting the held-out marginal exactly scores 0); pass ``h_y`` to use a known value
such as log2(n_classes) for balanced tasks.

Over training and over seeds. :func:`usable_information_over_training` gives one network's
curves (:class:`UsableCurves`); a :class:`UsableEnsemble` holds those of networks that differ
only in their seed, their spread, and in how many seeds each curve rises then falls
(:func:`rises_then_falls`: a peak above both the first and the last record by more than
:data:`RISE_FALL_BITS`).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from ibsolver import entropy
from ibsolver.results import Result, json_safe
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import torch
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap

    #: a seed: None, an int, a numpy Generator or a torch.Generator
    RandomState = Union[int, np.random.Generator, torch.Generator, None]
    #: one record's activations {layer: (n, ...) array or tensor}
    LayerActivations = Mapping[str, Union[np.ndarray, torch.Tensor]]

logger = logging.getLogger(__name__)

LN2 = math.log(2.0)

#: the decoder budgets used when an option is left at None
DEFAULT_BUDGETS = {
    "linear": dict(hidden=(), epochs=40, lr=0.05, weight_decay=1e-4, dropout=0.0, batch_size=256),
    "mlp": dict(hidden=(128, 64, 32), epochs=40, lr=0.01, weight_decay=1e-3, dropout=0.2,
                batch_size=256),
}


@dataclass(frozen=True)
class DecoderBudget:
    """Everything that defines the decoder family and its training (Adam, fixed epochs).

    ``hidden`` is empty for the linear decoder. ``standardize``: features are z-scored with
    the training split's mean and standard deviation before decoding.
    """

    decoder: str
    hidden: tuple
    epochs: int
    lr: float
    weight_decay: float
    dropout: float
    batch_size: int
    test_size: float
    standardize: bool
    optimizer: str = "adam"
    leaky_slope: float = 0.2
    batch_norm: bool = True


def _over_seeds(values) -> dict:
    """{"mean", "std", "min", "max"} of a 1-D array of per-seed values."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            "max": float(v.max())}


def _final_peak(value: np.ndarray, label_sets: Sequence[str], layers: Sequence[str],
                f: Callable[[Any], Any]) -> dict:
    """{"final" | "peak": {label set: {layer: f(values)}}}, the values being
    ``value[..., i, j, -1]`` (last epoch) and the maximum over epochs of ``value[..., i, j, :]``."""
    return {stat: {lab: {layer: f(a[..., i, j]) for j, layer in enumerate(layers)}
                   for i, lab in enumerate(label_sets)}
            for stat, a in (("final", value[..., -1]), ("peak", value.max(axis=-1)))}


def _budget_summary(budget: DecoderBudget) -> dict:
    """The budget as JSON values (``hidden`` a list; a linear decoder has no batch norm)."""
    d = dataclasses.asdict(budget)
    d["hidden"] = list(budget.hidden)
    if budget.decoder == "linear":
        d["batch_norm"] = False
    return d


_SCALARS = ("value", "raw", "clipped", "h_y", "cross_entropy", "train_cross_entropy",
            "test_accuracy", "n_train", "n_test")


@dataclass(frozen=True)
class UsableInformation(Result):
    """Usable information of a representation about a label, in bits.

    ``save``/``load`` (one .npz, no pickle), ``summary()`` and ``to_dataframe()`` (one row)
    as every ``ibsolver`` result.

    Attributes
    ----------
    value : max(raw, 0), bits.
    raw : H(Y) - held-out cross-entropy, bits (may be negative).
    clipped : True when raw < 0 and value was set to 0.
    h_y : the entropy H(Y) used, bits.
    cross_entropy : held-out cross-entropy of the decoder, bits.
    train_cross_entropy : cross-entropy on the decoder's own training split, bits.
    test_accuracy : held-out accuracy of the decoder's argmax.
    n_train, n_test : split sizes.
    budget : the DecoderBudget (decoder family, epochs, lr, weight decay, hidden sizes, ...).
    """

    value: float
    raw: float
    clipped: bool
    h_y: float
    cross_entropy: float
    train_cross_entropy: float
    test_accuracy: float
    n_train: int
    n_test: int
    budget: DecoderBudget

    def summary(self) -> dict:
        """The values (bits), the accuracy, the split sizes and the decoder budget, as plain
        JSON values; NaN as None."""
        return json_safe({**{k: getattr(self, k) for k in _SCALARS},
                           "budget": _budget_summary(self.budget)})

    def _columns(self) -> list:
        """One row: the values (bits), the accuracy, the split sizes and the decoder."""
        return [{**{k: getattr(self, k) for k in _SCALARS}, "decoder": self.budget.decoder}]


def decoder_budget(decoder: str, test_size: float = 0.5, **decoder_options: Any) -> DecoderBudget:
    """The decoders' budget that :func:`usable_information_over_training` uses for
    ``decoder`` and its ``decoder_options`` (hidden, epochs or decoder_epochs, lr,
    weight_decay, dropout, batch_size, standardize), checked: recipes call it before they
    train, so that a bad decoder setting fails at once, not after the training."""
    options = dict(decoder_options)
    if "decoder_epochs" in options:
        options["epochs"] = options.pop("decoder_epochs")
    budget = _resolve_budget(decoder, options.pop("hidden", None), options.pop("epochs", None),
                             options.pop("lr", None), options.pop("weight_decay", None),
                             options.pop("dropout", None), options.pop("batch_size", None),
                             test_size, options.pop("standardize", True))
    if options:
        raise TypeError(f"unknown decoder options {sorted(options)}")
    return budget


def _resolve_budget(decoder, hidden, epochs, lr, weight_decay, dropout, batch_size, test_size,
                    standardize) -> DecoderBudget:
    if decoder not in DEFAULT_BUDGETS:
        raise ValueError(f"decoder must be one of {sorted(DEFAULT_BUDGETS)} (got {decoder!r})")
    base = DEFAULT_BUDGETS[decoder]
    hidden = base["hidden"] if hidden is None else tuple(int(h) for h in hidden)
    if decoder == "linear" and hidden:
        raise ValueError(f"hidden must be empty for decoder='linear' (got {hidden!r})")
    if decoder == "mlp" and (not hidden or min(hidden) < 1):
        raise ValueError("hidden must list positive layer sizes for decoder='mlp' "
                         f"(got {hidden!r})")
    epochs = base["epochs"] if epochs is None else epochs
    lr = base["lr"] if lr is None else float(lr)
    weight_decay = base["weight_decay"] if weight_decay is None else float(weight_decay)
    dropout = base["dropout"] if dropout is None else float(dropout)
    batch_size = base["batch_size"] if batch_size is None else batch_size
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer (got {epochs!r})")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number (got {lr!r})")
    if not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay must be >= 0 (got {weight_decay!r})")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1) (got {dropout!r})")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (got {batch_size!r})")
    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"test_size must be in (0, 1) (got {test_size!r})")
    return DecoderBudget(decoder=decoder, hidden=hidden, epochs=int(epochs), lr=lr,
                         weight_decay=weight_decay, dropout=dropout, batch_size=int(batch_size),
                         test_size=float(test_size), standardize=bool(standardize))


class _DecoderStack:
    """G independent decoders trained in lock-step as one batched model.

    Decoder g reads the first ``d_in[g]`` features of its (zero-padded) input and predicts
    ``n_classes[g]`` classes (the other logits are masked to -inf). Weights have a leading
    group axis, so every decoder keeps its own parameters, batch-norm statistics and Adam
    moments; the loss is the sum over groups of each group's mean cross-entropy, so the
    gradients of different decoders never mix. Linear layers are initialised as PyTorch's
    ``nn.Linear`` (U(-1/sqrt(fan_in), 1/sqrt(fan_in))) with each decoder's own fan-in.

    Not the model builder's MLP stacked for ``torch.func.vmap`` as ``record_training`` stacks
    seeds: the decoders differ in input and output width (padded here, a zero-feature Z
    included) and each draws its dropout masks from its own generator (vmap draws from
    torch's global one), which keeps a decoder's numbers independent of the decoders trained
    beside it.
    """

    def __init__(self, d_in, n_classes, budget: DecoderBudget, gens, device):
        import torch

        self.budget = budget
        self.device = device
        G = len(d_in)
        dims = [max(d_in)] + list(budget.hidden) + [max(n_classes)]
        self.weights, self.biases, self.gammas, self.betas = [], [], [], []
        self.run_mean, self.run_var = [], []
        last = len(dims) - 2
        for li, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            W = torch.zeros(G, a, b)
            B = torch.zeros(G, b)
            for g in range(G):
                # draw with the decoder's own sizes, then zero-pad: the grouping and the
                # other decoders' sizes never change a decoder's initialisation
                a_g = d_in[g] if li == 0 else a
                b_g = n_classes[g] if li == last else b
                bound = 1.0 / math.sqrt(max(a_g, 1))
                W[g, :a_g, :b_g] = (torch.rand(b_g, a_g, generator=gens[g]) * 2 - 1).T * bound
                B[g, :b_g] = (torch.rand(b_g, generator=gens[g]) * 2 - 1) * bound
            self.weights.append(W.to(device).requires_grad_())
            self.biases.append(B.to(device).requires_grad_())
            if li < len(dims) - 2 and budget.batch_norm:
                self.gammas.append(torch.ones(G * b, device=device, requires_grad=True))
                self.betas.append(torch.zeros(G * b, device=device, requires_grad=True))
                self.run_mean.append(torch.zeros(G * b, device=device))
                self.run_var.append(torch.ones(G * b, device=device))
        mask = torch.zeros(G, 1, dims[-1], dtype=torch.bool)
        for g, c in enumerate(n_classes):
            mask[g, 0, :c] = True
        self.class_mask = mask.to(device)
        # each decoder's dropout masks continue its own generator: grouping-invariant
        self.gens = gens

    def parameters(self):
        return self.weights + self.biases + self.gammas + self.betas

    def __call__(self, x, train: bool):
        import torch
        import torch.nn.functional as F

        h = x
        n_hidden = len(self.budget.hidden)
        for li in range(n_hidden + 1):
            h = torch.baddbmm(self.biases[li].unsqueeze(1), h, self.weights[li])
            if li == n_hidden:
                break
            if self.budget.batch_norm:
                # one fused batch-norm over the m rows, each decoder's units its own channels
                G, m, width = h.shape
                h = F.batch_norm(h.transpose(0, 1).reshape(m, G * width),
                                 self.run_mean[li], self.run_var[li], self.gammas[li],
                                 self.betas[li], training=train, momentum=0.1, eps=1e-5)
                h = h.reshape(m, G, width).transpose(0, 1)
            h = F.leaky_relu(h, self.budget.leaky_slope)
            if train and self.budget.dropout > 0:
                keep = torch.empty(h.shape)  # on the CPU, where the generators live
                for g, gen in enumerate(self.gens):
                    torch.rand(h.shape[1:], generator=gen, out=keep[g])
                scale = 1.0 / (1.0 - self.budget.dropout)
                h = h * keep.ge_(self.budget.dropout).mul_(scale).to(h.device)
        return h.masked_fill(~self.class_mask, float("-inf"))


def _per_group_ce(logits, y):
    """(G,) mean cross-entropy in nats of (G, B, C) logits against (G, B) labels."""
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    return -torch.gather(logp, 2, y.unsqueeze(-1)).squeeze(-1).mean(dim=1)


def _train_decoders(Zs, ys, n_classes, budget: DecoderBudget, split, seeds, order_seed, device):
    """Train one decoder per (Z, y) pair on ``split[0]`` and evaluate on ``split[1]``.

    Returns a list of (held-out CE bits, training CE bits, held-out accuracy) per pair.
    """
    import torch

    from .loop import fit

    train_idx, test_idx = split
    G = len(Zs)
    d_in = [z.shape[1] for z in Zs]
    d_max = max(d_in)
    n_tr, n_te = len(train_idx), len(test_idx)
    x_tr = torch.zeros(G, n_tr, d_max)
    x_te = torch.zeros(G, n_te, d_max)
    for g, z in enumerate(Zs):
        a, b = z[train_idx], z[test_idx]
        if budget.standardize:
            mu = a.mean(axis=0)
            sd = a.std(axis=0)
            sd = np.where(sd > 1e-8 * np.maximum(1.0, np.abs(mu)), sd, 1.0)
            a, b = (a - mu) / sd, (b - mu) / sd
        x_tr[g, :, :d_in[g]] = torch.as_tensor(a, dtype=torch.float32)
        x_te[g, :, :d_in[g]] = torch.as_tensor(b, dtype=torch.float32)
    y_tr = torch.as_tensor(np.stack([y[train_idx] for y in ys]), dtype=torch.long)
    y_te = torch.as_tensor(np.stack([y[test_idx] for y in ys]), dtype=torch.long)
    x_tr, x_te, y_tr, y_te = (t.to(device) for t in (x_tr, x_te, y_tr, y_te))

    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    net = _DecoderStack(d_in, n_classes, budget, gens, device)
    fit(net.parameters(),
        lambda idx: _per_group_ce(net(x_tr[:, idx], train=True), y_tr[:, idx]).sum(), n_tr,
        epochs=budget.epochs, batch_size=budget.batch_size,
        generator=torch.Generator().manual_seed(int(order_seed)), optimizer=budget.optimizer,
        lr=budget.lr, weight_decay=budget.weight_decay,
        min_rows=2 if budget.batch_norm and budget.hidden else 1, device=device)
    with torch.no_grad():
        logits_te = net(x_te, train=False)
        ce_te = (_per_group_ce(logits_te, y_te) / LN2).cpu().numpy()
        acc = (logits_te.argmax(-1) == y_te).float().mean(dim=1).cpu().numpy()
        ce_tr = np.zeros(G)
        for start in range(0, n_tr, 4096):
            sl = slice(start, start + 4096)
            part = _per_group_ce(net(x_tr[:, sl], train=False), y_tr[:, sl])
            ce_tr += part.cpu().numpy() * x_tr[:, sl].shape[1]
        ce_tr = ce_tr / n_tr / LN2
    return [(float(ce_te[g]), float(ce_tr[g]), float(acc[g])) for g in range(G)]


def _label_entropy(labels, n_classes: int) -> float:
    """The plug-in entropy H(Y), bits, of the integer ``labels`` (classes 0..n_classes-1)."""
    return float(entropy(np.bincount(labels, minlength=n_classes) / len(labels)))


def _check_inputs(Z, y, n_classes) -> tuple[np.ndarray, np.ndarray, int]:
    Z = np.asarray(Z.detach().cpu().numpy() if hasattr(Z, "detach") else Z)
    y = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    if Z.ndim == 1:
        Z = Z[:, None]
    if Z.ndim != 2:
        raise ValueError(f"Z must be a 2-D array (n_samples, n_features) (got shape {Z.shape})")
    if y.ndim != 1 or y.shape[0] != Z.shape[0]:
        raise ValueError(f"y must be a 1-D array with one label per row of Z "
                         f"(got shape {y.shape} for Z of shape {Z.shape})")
    if not np.issubdtype(y.dtype, np.integer):
        if np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"y must hold integer class labels (got dtype {y.dtype})")
    if y.size and y.min() < 0:
        raise ValueError(f"y must hold labels 0..n_classes-1 (got min {y.min()})")
    if not np.all(np.isfinite(Z)):
        raise ValueError("Z must be finite (got NaN or inf)")
    k = int(y.max()) + 1 if y.size else 1
    if n_classes is None:
        n_classes = max(k, 2)
    elif n_classes < k:
        raise ValueError(f"n_classes must be > the largest label {k - 1} (got {n_classes})")
    if Z.shape[0] < 4:
        raise ValueError(f"Z must have at least 4 rows to split (got {Z.shape[0]})")
    return Z.astype(np.float32), y.astype(np.int64), int(n_classes)


def usable_information(Z: ArrayLike | torch.Tensor, y: ArrayLike | torch.Tensor, *,
                       decoder: str = "linear", n_classes: int | None = None,
                       h_y: float | None = None, test_size: float = 0.5,
                       hidden: Sequence[int] | None = None,
                       epochs: int | None = None, lr: float | None = None,
                       weight_decay: float | None = None, dropout: float | None = None,
                       batch_size: int | None = None, standardize: bool = True,
                       split: tuple[ArrayLike, ArrayLike] | None = None,
                       random_state: RandomState = 0, device: str | torch.device = "cpu",
                       n_threads: int | None = None) -> UsableInformation:
    """Usable information I_u(Z; Y) = H(Y) - L_CE in bits, L_CE held out.

    Parameters
    ----------
    Z : (n, d) representation (numpy array or tensor).
    y : (n,) integer labels in 0..n_classes-1.
    decoder : "linear" (multinomial logistic regression) or "mlp" (``hidden`` layers, each
        Linear -> BatchNorm -> LeakyReLU(0.2) -> dropout; default 128-64-32 as in the paper).
    n_classes : number of classes (default: largest label + 1).
    h_y : H(Y) in bits; default: plug-in entropy of the held-out labels.
    test_size : fraction held out for L_CE (stratified by y).
    hidden, epochs, lr, weight_decay, dropout, batch_size : the decoder's budget; None takes
        ``DEFAULT_BUDGETS[decoder]``. Training is Adam with a fixed number of epochs (no early
        stopping on the held-out split, which would bias L_CE down).
    standardize : z-score the features with the training split's statistics (an invertible
        affine map: it changes what a decoder with a finite budget reaches, not I(Z;Y)).
    split : optional (train_idx, test_idx) to reuse one split across layers and epochs.
    random_state : seed for the split, the decoder's initialisation, batches and dropout.
    device : torch device for the decoder ("cpu", "cuda", "auto").
    n_threads : torch intra-op threads while training (None = leave torch's setting; 1 is
        fastest for these small decoders on a busy CPU). Restored afterwards.

    Returns
    -------
    UsableInformation (value clipped at 0, raw, clipped flag, H(Y), CE, budget), bits.
    """
    from ._info_utils import make_generator, seed_from, torch_threads
    from .models import resolve_device

    Z, y, n_classes = _check_inputs(Z, y, n_classes)
    budget = _resolve_budget(decoder, hidden, epochs, lr, weight_decay, dropout, batch_size,
                             test_size, standardize)
    dev = resolve_device(device) if isinstance(device, str) else device
    gen = make_generator(random_state)
    split = _resolve_split(split, len(y), budget.test_size, gen, y)
    if h_y is None:
        h_y = _label_entropy(y[split[1]], n_classes)
    with torch_threads(n_threads):
        (ce_te, ce_tr, acc), = _train_decoders([Z], [y], [n_classes], budget, split,
                                               [seed_from(gen)], seed_from(gen), dev)
    return _result(float(h_y), ce_te, ce_tr, acc, split, budget)


def _resolve_split(split, n, test_size, gen, y) -> tuple[np.ndarray, np.ndarray]:
    from ._info_utils import seed_from, stratified_split

    if split is None:
        return stratified_split(y, 1.0 - test_size, seed_from(gen))
    train_idx, test_idx = (np.asarray(s, dtype=np.int64) for s in split)
    if len(train_idx) < 2 or len(test_idx) < 1:
        raise ValueError(f"split must give >= 2 training and >= 1 test rows "
                         f"(got {len(train_idx)} and {len(test_idx)})")
    if train_idx.min() < 0 or test_idx.min() < 0 or max(train_idx.max(), test_idx.max()) >= n:
        raise ValueError(f"split indices must lie in [0, {n}) (got out-of-range indices)")
    if np.intersect1d(train_idx, test_idx).size:
        raise ValueError("split must give disjoint training and test rows (got overlap)")
    return train_idx, test_idx


def _result(h_y, ce_te, ce_tr, acc, split, budget) -> UsableInformation:
    raw = h_y - ce_te
    clipped = raw < 0
    if clipped:
        logger.debug("usable information %.4f bits < 0 clipped to 0 (decoder %s)", raw,
                     budget.decoder)
    return UsableInformation(value=max(raw, 0.0), raw=float(raw), clipped=bool(clipped), h_y=h_y,
                             cross_entropy=float(ce_te), train_cross_entropy=float(ce_tr),
                             test_accuracy=float(acc), n_train=int(len(split[0])),
                             n_test=int(len(split[1])), budget=budget)


@dataclass(frozen=True)
class UsableCurves(Result):
    """Usable information per label set, layer and recorded epoch, in bits.

    ``value[i, j, k]`` is the (clipped) usable information about ``label_sets[i]`` in layer
    ``layers[j]`` at ``epochs[k]``; ``raw`` and ``clipped`` alongside; ``h_y[label]`` and
    ``max_bits[label]`` = log2(number of classes). ``results`` holds every
    UsableInformation in the same (label, layer, epoch) order.

    ``save``/``load`` (one .npz, no pickle), ``summary()`` and ``to_dataframe()`` (one row
    per label set, layer and epoch) as every ``ibsolver`` result.
    """

    epochs: np.ndarray
    layers: tuple
    label_sets: tuple
    value: np.ndarray
    raw: np.ndarray
    clipped: np.ndarray
    test_accuracy: np.ndarray
    h_y: dict
    max_bits: dict
    budget: DecoderBudget
    results: tuple = field(repr=False, default=())

    def summary(self) -> dict:
        """The epochs, H(Y) and the maximum per label set, the decoder budget, the "final"
        and "peak" usable information per label set and layer and "n_clipped" (decoders
        whose raw value was negative), bits, as plain JSON values; NaN as None."""
        per_layer = _final_peak(self.value, self.label_sets, self.layers, float)
        return json_safe({"epochs": self.epochs, "layers": list(self.layers),
                           "label_sets": list(self.label_sets), "h_y_bits": dict(self.h_y),
                           "max_bits": dict(self.max_bits),
                           "decoder_budget": _budget_summary(self.budget), **per_layer,
                           "n_clipped": int(np.sum(self.clipped))})

    def _columns(self) -> list:
        """One dict per (label, layer, epoch): usable and raw information (bits), the
        clipping flag, the accuracy, H(Y) (bits) and the decoder."""
        rows = []
        for i, lab in enumerate(self.label_sets):
            for j, layer in enumerate(self.layers):
                for k, ep in enumerate(self.epochs):
                    rows.append(dict(label=lab, layer=layer, epoch=int(ep),
                                     usable_bits=float(self.value[i, j, k]),
                                     raw_bits=float(self.raw[i, j, k]),
                                     clipped=bool(self.clipped[i, j, k]),
                                     test_accuracy=float(self.test_accuracy[i, j, k]),
                                     h_y_bits=float(self.h_y[lab]),
                                     decoder=self.budget.decoder))
        return rows


def usable_information_over_training(activations: Iterable[LayerActivations] | dict[int, LayerActivations],
                                     labels: dict[str, ArrayLike | torch.Tensor], *,
                                     epochs: Iterable[int] | None = None,
                                     layers: Iterable[str] | None = None,
                                     decoder: str = "linear", n_classes: dict[str, int] | None = None,
                                     test_size: float = 0.5, random_state: RandomState = 0,
                                     progress: Callable[[int], object] | None = None,
                                     device: str | torch.device = "cpu", n_threads: int | None = None,
                                     max_group: int = 64, **decoder_options: Any) -> UsableCurves:
    """Usable information per label set and layer at every recorded epoch.

    Parameters
    ----------
    activations : a sequence (one entry per recorded epoch) or a dict {epoch: ...}, each
        entry a dict {layer name: (n, d) activations of the same n probe inputs}.
    labels : {label-set name: (n,) integer labels of the probe inputs}, e.g.
        {"direction": ..., "color": ...}.
    epochs : epoch numbers when ``activations`` is a sequence (default 0, 1, ...), or the
        subset of keys to use when it is a dict.
    layers : the layer names to use, in order (default: those of the first entry).
    decoder, test_size, device, n_threads, **decoder_options : as in
        :func:`usable_information` (hidden, epochs is ``decoder_epochs`` here, lr,
        weight_decay, dropout, batch_size, standardize).
    n_classes : optional {label-set name: number of classes}.
    random_state : one seed. The train/test split (stratified on the first label set) is
        drawn once and shared by every layer and epoch, so differences are not split noise;
        every decoder has its own initialisation seed derived from it.
    progress : optional callable invoked with the number of decoders finished.
    max_group : decoders trained together as one batched model. Every decoder keeps its own
        parameters, seed and dropout masks and all see the same minibatch order, so the
        grouping changes nothing but speed (up to float32 round-off).

    Returns
    -------
    UsableCurves, bits.
    """
    from ._info_utils import make_generator, seed_from, stratified_split, torch_threads
    from .models import resolve_device

    if isinstance(activations, dict):
        ep = list(activations.keys()) if epochs is None else list(epochs)
        missing = [e for e in ep if e not in activations]
        if missing:
            raise ValueError(f"epochs {missing[:5]} are not keys of activations")
        entries = [activations[e] for e in ep]
    else:
        entries = list(activations)
        ep = list(range(len(entries))) if epochs is None else list(epochs)
    if not entries:
        raise ValueError("activations must hold at least one recorded epoch (got none)")
    if len(ep) != len(entries):
        raise ValueError(f"epochs must have one entry per recorded epoch "
                         f"(got {len(ep)} for {len(entries)})")
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f"labels must be a non-empty dict {{name: (n,) labels}} (got {labels!r})")
    budget = decoder_budget(decoder, test_size, **decoder_options)
    if int(max_group) != max_group or max_group < 1:
        raise ValueError(f"max_group must be a positive integer (got {max_group!r})")
    layers = tuple(entries[0].keys()) if layers is None else tuple(layers)
    n_classes = dict(n_classes or {})
    label_sets = tuple(labels.keys())
    ys = {}
    for lab, v in labels.items():
        v = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
        if v.ndim != 1 or not np.issubdtype(v.dtype, np.integer) or (v.size and v.min() < 0):
            raise ValueError(f"labels[{lab!r}] must be a 1-D array of labels 0..C-1 "
                             f"(got shape {v.shape}, dtype {v.dtype})")
        ys[lab] = v.astype(np.int64)
        n_classes.setdefault(lab, max(int(v.max()) + 1, 2))
    n = len(ys[label_sets[0]])
    for lab, v in ys.items():
        if v.shape != (n,):
            raise ValueError(f"labels[{lab!r}] must have shape ({n},) (got {v.shape})")
    jobs = []   # (i, j, k, Z)
    for k, entry in enumerate(entries):
        for j, layer in enumerate(layers):
            if layer not in entry:
                raise ValueError(f"layer {layer!r} missing from the activations of epoch "
                                 f"{ep[k]} (has {sorted(entry)})")
            z = entry[layer]
            z = np.asarray(z.detach().cpu().numpy() if hasattr(z, "detach") else z,
                           dtype=np.float32).reshape(z.shape[0], -1)
            if z.shape[0] != n:
                raise ValueError(f"activations of layer {layer!r} at epoch {ep[k]} have "
                                 f"{z.shape[0]} rows, labels have {n}")
            if not np.all(np.isfinite(z)):
                raise ValueError(f"activations of layer {layer!r} at epoch {ep[k]} must be "
                                 "finite (got NaN or inf)")
            for i in range(len(label_sets)):
                jobs.append((i, j, k, z))
    gen = make_generator(random_state)
    split = stratified_split(ys[label_sets[0]], 1.0 - budget.test_size, seed_from(gen))
    # H(Y) of the held-out labels, shared by every layer and epoch
    h_y = {k: _label_entropy(ys[k][split[1]], n_classes[k]) for k in label_sets}
    seeds = [seed_from(gen) for _ in jobs]
    order_seed = seed_from(gen)  # same minibatch order for every chunk: grouping-invariant
    dev = resolve_device(device) if isinstance(device, str) else device

    shape = (len(label_sets), len(layers), len(entries))
    value = np.zeros(shape)
    raw = np.zeros(shape)
    clipped = np.zeros(shape, dtype=bool)
    acc = np.zeros(shape)
    results = [None] * len(jobs)
    with torch_threads(n_threads):
        for start in range(0, len(jobs), max_group):
            chunk = jobs[start:start + max_group]
            out = _train_decoders([z for (_, _, _, z) in chunk],
                                  [ys[label_sets[i]] for (i, _, _, _) in chunk],
                                  [n_classes[label_sets[i]] for (i, _, _, _) in chunk],
                                  budget, split, seeds[start:start + max_group],
                                  order_seed, dev)
            for q, ((i, j, k, _), (ce_te, ce_tr, a)) in enumerate(zip(chunk, out)):
                res = _result(h_y[label_sets[i]], ce_te, ce_tr, a, split, budget)
                value[i, j, k], raw[i, j, k] = res.value, res.raw
                clipped[i, j, k], acc[i, j, k] = res.clipped, res.test_accuracy
                results[start + q] = res
            if progress is not None:
                progress(len(chunk))
    order = sorted(range(len(jobs)), key=lambda q: jobs[q][:3])
    logger.info("usable information: %d decoders (%s), %d clipped at 0", len(jobs), decoder,
                int(clipped.sum()))
    return UsableCurves(epochs=np.asarray(ep), layers=layers, label_sets=label_sets, value=value,
                        raw=raw, clipped=clipped, test_accuracy=acc, h_y=h_y,
                        max_bits={k: math.log2(n_classes[k]) for k in label_sets},
                        budget=budget, results=tuple(results[q] for q in order))


#: the rise and the drop, in bits, a usable-information curve must both exceed to count as
#: rising then falling (:func:`rises_then_falls`): well above the measurement's own noise,
#: small against the effect the paper reports (up to 1 bit of colour information at n = 2,
#: gained and then lost). On the checkerboard (n = 2, MLP decoders, 2000 probe rows),
#: decoders retrained with another split and seed move a layer's usable information by
#: 0.002 bit (median standard deviation, 0.006 at most), and over 5 seeds x 9 records no
#: hidden layer's curve that stayed level fell from its peak by more than 0.011 bit (0.021
#: with linear decoders).
RISE_FALL_BITS = 0.05


def rise_and_drop(values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The rise (peak minus first record) and the drop (peak minus last record) of curves.

    Parameters
    ----------
    values : array_like, shape (..., E)
        Curves over E records, in bits.

    Returns
    -------
    (rise, drop) : two arrays of shape (...), bits, both >= 0.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 1 or v.shape[-1] < 1:
        raise ValueError(f"values must hold curves along their last axis (got shape {v.shape})")
    peak = v.max(axis=-1)
    return peak - v[..., 0], peak - v[..., -1]


def rises_then_falls(values: ArrayLike, *, threshold_bits: float = RISE_FALL_BITS) -> np.ndarray:
    """Whether each curve rises then falls.

    A curve rises then falls when its peak exceeds both its first and its last record by
    more than ``threshold_bits`` (so the peak lies strictly between them). A curve that only
    falls (information present at initialisation, then discarded) or only rises does not
    count, nor does one whose rise or drop equals the threshold.

    Parameters
    ----------
    values : array_like, shape (..., E)
        Curves over E records in training order, in bits.
    threshold_bits : float
        The rise and the drop, in bits, a curve must both exceed (default
        :data:`RISE_FALL_BITS`).

    Returns
    -------
    numpy.ndarray of bool, shape (...)
    """
    if not (threshold_bits >= 0 and math.isfinite(threshold_bits)):
        raise ValueError(f"threshold_bits must be a finite number >= 0 (got {threshold_bits!r})")
    rise, drop = rise_and_drop(values)
    return (rise > threshold_bits) & (drop > threshold_bits)


@dataclass(frozen=True)
class UsableEnsemble(Result):
    """Usable information over training of networks that differ only in their seed, in bits.

    ``save``/``load`` (one .npz, no pickle), ``summary()`` and ``to_dataframe()`` as every
    ``ibsolver`` result.

    Attributes
    ----------
    seeds : tuple of int
        The networks' seeds (initial weights and minibatch order), S of them.
    curves : tuple of UsableCurves
        One per seed, on the same epochs, layers, label sets and decoder budget.
    """

    seeds: tuple
    curves: tuple

    def __post_init__(self):
        if not self.curves or len(self.curves) != len(self.seeds):
            raise ValueError(f"curves must hold one UsableCurves per seed (got "
                             f"{len(self.curves)} for {len(self.seeds)} seeds)")
        def shared(c):
            return tuple(c.epochs.tolist()), c.layers, c.label_sets, c.budget

        if any(shared(c) != shared(self.curves[0]) for c in self.curves[1:]):
            raise ValueError("curves must share epochs, layers, label sets and decoder budget")

    @property
    def epochs(self) -> np.ndarray:
        return self.curves[0].epochs

    @property
    def layers(self) -> tuple:
        return self.curves[0].layers

    @property
    def label_sets(self) -> tuple:
        return self.curves[0].label_sets

    @property
    def max_bits(self) -> dict:
        return self.curves[0].max_bits

    @property
    def budget(self) -> DecoderBudget:
        return self.curves[0].budget

    @property
    def value(self) -> np.ndarray:
        """(S, label set, layer, epoch) usable information, bits."""
        return np.stack([c.value for c in self.curves])

    def spread(self) -> dict:
        """{"mean", "std", "min", "max"}: each (label set, layer, epoch), over seeds, bits."""
        v = self.value
        return {"mean": v.mean(0), "std": v.std(0), "min": v.min(0), "max": v.max(0)}

    def rise_then_fall(self, *, threshold_bits: float = RISE_FALL_BITS) -> dict:
        """Per label set and layer, in how many seeds usable information rises then falls.

        Returns
        -------
        dict
            {label set: {layer: {"fraction": k / S, "n_rise_fall": k, "n_seeds": S,
            "rise_bits", "drop_bits": per seed, bits}}} with :func:`rises_then_falls`'s
            definition at ``threshold_bits``.
        """
        v = self.value
        yes = rises_then_falls(v, threshold_bits=threshold_bits)
        rise, drop = rise_and_drop(v)
        n = len(self.seeds)
        return {lab: {layer: {"fraction": float(yes[:, i, j].mean()),
                              "n_rise_fall": int(yes[:, i, j].sum()), "n_seeds": n,
                              "rise_bits": rise[:, i, j].tolist(),
                              "drop_bits": drop[:, i, j].tolist()}
                      for j, layer in enumerate(self.layers)}
                for i, lab in enumerate(self.label_sets)}

    def _columns(self) -> list:
        """One dict per (seed, label, layer, epoch), for CSV."""
        return [{"seed": s, **r} for s, c in zip(self.seeds, self.curves) for r in c._columns()]

    def summary(self, *, threshold_bits: float = RISE_FALL_BITS) -> dict:
        """The JSON-ready summary, bits: the seeds, the decoder budget, H(Y) and the maximum
        per label set; "final" and "peak" usable information per label set and layer, each
        {"mean", "std", "min", "max"} over seeds; "rise_then_fall" (:meth:`rise_then_fall`
        at ``threshold_bits``, also given as "rise_then_fall_bits"); "n_clipped" (decoders
        whose raw value was negative, over all seeds)."""
        per_layer = _final_peak(self.value, self.label_sets, self.layers, _over_seeds)
        return {"seeds": list(self.seeds), "decoder_budget": _budget_summary(self.budget),
                "h_y_bits": self.curves[0].h_y, "max_bits": self.max_bits, **per_layer,
                "rise_then_fall": self.rise_then_fall(threshold_bits=threshold_bits),
                "rise_then_fall_bits": float(threshold_bits),
                "n_clipped": int(sum(c.clipped.sum() for c in self.curves))}


def plot_usable_curves(curves: UsableCurves | UsableEnsemble, *, ax: Axes | None = None,
                       label_sets: Iterable[str] | None = None,
                       cmaps: Sequence[str | Colormap] | None = None, title: str | None = None,
                       legend: str = "compact") -> Axes:
    """Usable information vs epoch, one curve per layer (darker = deeper), one colour family
    per label set (blue, orange, green, ... in ``curves.label_sets`` order, as in the
    paper's figures), the maximum log2(C) dotted. For a :class:`UsableEnsemble` each curve
    is the mean over seeds, with the range over seeds (min to max) shaded. ``legend``:
    "compact" (one entry per label set), "full" (one per curve) or "none". Returns the
    axes."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if legend not in ("compact", "full", "none"):
        raise ValueError(f"legend must be 'compact', 'full' or 'none' (got {legend!r})")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    spread = curves.spread() if isinstance(curves, UsableEnsemble) else None
    middle = curves.value if spread is None else spread["mean"]
    label_sets = curves.label_sets if label_sets is None else tuple(label_sets)
    cmaps = cmaps or ["Blues", "Oranges", "Greens", "Purples", "Reds", "Greys"]
    n_layers = len(curves.layers)
    handles: list = []
    for lab in label_sets:
        li = curves.label_sets.index(lab)
        cmap = plt.get_cmap(cmaps[li % len(cmaps)])
        for j, layer in enumerate(curves.layers):
            shade = cmap(0.35 + 0.6 * (j / max(n_layers - 1, 1)))
            ax.plot(curves.epochs, middle[li, j], color=shade, lw=1.6, label=f"{lab} {layer}")
            if spread is not None:
                ax.fill_between(curves.epochs, spread["min"][li, j], spread["max"][li, j],
                                color=shade, alpha=0.15, lw=0)
        ax.axhline(curves.max_bits[lab], color=cmap(0.9), ls=":", lw=1)
        handles.append(Line2D([], [], color=cmap(0.8), lw=2,
                              label=f"{lab} ({curves.layers[0]} light ... "
                                    f"{curves.layers[-1]} dark)"))
    if isinstance(curves, UsableEnsemble):
        handles.append(Patch(color="grey", alpha=0.3,
                             label=f"mean, range over {len(curves.seeds)} seeds"))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"usable information (bits, {curves.budget.decoder} decoder)")
    if title:
        ax.set_title(title, fontsize=9)
    if legend == "full":
        ax.legend(fontsize=6, ncol=2, loc="best")
    elif legend == "compact":
        ax.legend(handles=handles, fontsize=7, loc="best")
    return ax
