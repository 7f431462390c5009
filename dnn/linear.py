"""Deep linear networks on Gaussian data (Saxe et al. 2018): exact layer information, in bits.

Shwartz-Ziv & Tishby (2017) reported a compression phase, a late fall of every layer's
I(X;T). Saxe et al. (2018, "On the information bottleneck theory of deep learning") showed
that deep linear networks, which have no saturating units, do not compress; that where part
of the input is irrelevant to the task, the information about that part can fall while the
total I(X;T) still rises; and that compression, where it appears, does not need the noise
of SGD (full-batch gradient descent shows it too). With Gaussian inputs and linear layers
every quantity is exact: no binning, no estimator.

The task (a student-teacher set-up)
-----------------------------------
X = (X_rel, X_irr) ~ N(0, I) with d_rel relevant and d_irr irrelevant dimensions, and

    Y = W X_rel + eps,   eps ~ N(0, s_y^2 I),   W (d_y, d_rel) with entries N(0, 1 / d_rel)

drawn once by the teacher's ``random_state``. The irrelevant dimensions are appended and do
not enter Y. In matrix form, with W~ = [W, 0] (d_y, d_x):

    Sigma_x = I,   Sigma_xy = Sigma_x W~',   Sigma_y = W W' + s_y^2 I,
    Sigma_x|y = Sigma_x - Sigma_xy Sigma_y^-1 Sigma_yx.

The network
-----------
Layers fc1 .. fcL are ``nn.Linear`` without bias, so layer l computes h_l = A_l X with
A_l = W_l ... W_1 (d_l, d_x); weights start N(0, init_scale^2 / fan_in). A deterministic
h_l has infinite I(X; h_l), so, as Saxe et al. do, the recorded representation carries
independent noise:

    T_l = A_l X + Z,   Z ~ N(0, sigma^2 I),   sigma^2 = ``noise_var`` (default 1.0, the
                                                 variance of one input dimension).

Only the recorded T_l is noisy; the network itself computes h_l. The numbers depend on
sigma^2 and on the scale of A_l (a layer that shrinks its output loses information about X
by this measure): state sigma^2 with every result.

The information (natural logs here; every returned number is divided by ln 2: bits)
-----------------------------------------------------------------------------------
T_l is jointly Gaussian with X and Y, with

    Sigma_t = A Sigma_x A' + sigma^2 I,   Sigma_t|y = A Sigma_x|y A' + sigma^2 I

(T = A X + Z with Z independent of (X, Y), so cov(T | Y) = A cov(X | Y) A' + sigma^2 I), and

    I(X;T)     = h(T) - h(T|X)      = 1/2 log det(I + A Sigma_x A' / sigma^2)
    I(T;Y)     = h(T) - h(T|Y)      = 1/2 log det Sigma_t - 1/2 log det Sigma_t|y
    I(T;X_irr) = h(T) - h(T|X_irr)  = 1/2 log det Sigma_t - 1/2 log det(A_rel A_rel' + sigma^2 I)

where A_rel holds the columns of A on the relevant inputs (given X_irr, T varies through
A_rel X_rel + Z only). I(T;Y) is symmetric and equals 1/2 log(det Sigma_t det Sigma_y /
det Sigma_(t,y)), which the tests check, with a Monte-Carlo estimate, against the above.

The bound
---------
T_l is built from X alone (T - X - Y is a Markov chain), so (I(X;T_l), I(T_l;Y)) lies on or
below the Gaussian IB curve of (X, Y) (Chechik et al. 2005), :func:`ibsolver.gaussian_ib`
of (Sigma_x, Sigma_xy, Sigma_y). Irrelevant dimensions add eigenvalues lambda = 1 only, so
the curve is the same with and without them.

Losses are 1/2 E||y_hat - y||^2: on the training sample (``train_loss``) and exactly under
the population (``test_loss`` = 1/2 [tr((A_L - W~) (A_L - W~)') + d_y s_y^2]).

:func:`deep_linear_experiment` runs the four conditions (without and with irrelevant
dimensions, SGD and full-batch GD; per seed, SGD and GD start from the same weights and
sample, and the runs without irrelevant dimensions see the same X_rel and Y) and returns a
:class:`DeepLinearStudy`; what ``ibsolver linear`` runs. A layer compresses when its I(X;T)
falls from its peak to the last record by more than 0.1 bit in every seed
(:func:`dnn.infoplane.compression`).

What the defaults show (16-8-8-4 network, 3 seeds, 300 epochs, init_scale 0.5): no layer
compresses in any of the four conditions; with irrelevant dimensions I(T;X_irr) falls in
the hidden layers while I(X;T) rises; SGD and GD give the same verdicts. The verdicts depend
on the initial scale: from init_scale 1 in layers of 16, plain SGD's gradient noise (from
the label noise) shrinks the hidden layers towards a balanced factorisation and their
I(X;T) falls, under SGD only, and not with near-noiseless outputs.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
from ibsolver.results import Result
from torch import nn

from ._info_utils import torch_threads
from .infoplane import COMPRESSION_BITS, _epoch_x, compression
from .loop import _check_int, _check_number, _check_seeds, fit
from .models import mlp, mlp_init, resolve_device
from .record import log_epochs

if TYPE_CHECKING:
    from ibsolver import GaussianIB
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike

    #: axes to draw on, in any shape: an array of them, a list, or a list of lists
    AxesGrid = Union[np.ndarray, Sequence[Axes], Sequence[Sequence[Axes]]]

logger = logging.getLogger(__name__)

LN2 = math.log(2.0)
METHODS = ("sgd", "gd")
#: points may exceed the Gaussian IB bound by this much (bits): round-off of the log-dets
BOUND_TOL = 1e-9

__all__ = ["GaussianTeacher", "gaussian_teacher", "channel_information", "deep_linear_network",
           "train_deep_linear", "DeepLinearRun", "DeepLinearStudy", "deep_linear_experiment",
           "plot_linear_infoplane", "plot_conditions", "plot_irrelevant_information"]


# --------------------------------------------------------------------------- the task
@dataclass(frozen=True)
class GaussianTeacher:
    """Y = W X_rel + N(0, output_noise I), X = (X_rel, X_irr) ~ N(0, I).

    Attributes
    ----------
    weights : (d_y, d_rel) array, the teacher W.
    n_irrelevant : number of input dimensions appended after the relevant ones; Y does not
        depend on them.
    output_noise : variance s_y^2 of each output's noise (> 0).
    """

    weights: np.ndarray
    n_irrelevant: int
    output_noise: float

    @property
    def n_relevant(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_inputs(self) -> int:
        return self.n_relevant + int(self.n_irrelevant)

    @property
    def n_outputs(self) -> int:
        return int(self.weights.shape[0])

    def with_irrelevant(self, n_irrelevant: int) -> GaussianTeacher:
        """The same teacher with ``n_irrelevant`` irrelevant input dimensions."""
        return dataclasses.replace(self, n_irrelevant=_check_int("n_irrelevant", n_irrelevant, 0))

    def full_weights(self) -> np.ndarray:
        """W~ = [W, 0], (d_y, d_x): Y's regression on all of X."""
        return np.hstack([self.weights, np.zeros((self.n_outputs, int(self.n_irrelevant)))])

    def covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Sigma_x, Sigma_xy, Sigma_y): (d_x, d_x), (d_x, d_y), (d_y, d_y)."""
        cov_x = np.eye(self.n_inputs)
        cov_xy = cov_x @ self.full_weights().T
        cov_y = self.weights @ self.weights.T + self.output_noise * np.eye(self.n_outputs)
        return cov_x, cov_xy, cov_y

    def ib(self) -> GaussianIB:
        """The analytic Gaussian IB of (X, Y) (:func:`ibsolver.gaussian_ib`), bits."""
        from ibsolver import gaussian_ib

        return gaussian_ib(*self.covariances())

    def sample(self, n: int, random_state: int | np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` rows (x (n, d_x), y (n, d_y)) drawn in the order X_rel, noise, X_irr, so that
        teachers differing only in ``n_irrelevant`` give the same X_rel and Y."""
        rng = np.random.default_rng(random_state)
        x_rel = rng.standard_normal((n, self.n_relevant))
        eps = rng.standard_normal((n, self.n_outputs)) * math.sqrt(self.output_noise)
        x_irr = rng.standard_normal((n, int(self.n_irrelevant)))
        return np.hstack([x_rel, x_irr]), x_rel @ self.weights.T + eps


def gaussian_teacher(n_relevant: int = 4, n_irrelevant: int = 12, n_outputs: int = 4, *,
                     output_noise: float = 0.1,
                     random_state: int | np.random.Generator | None = 0) -> GaussianTeacher:
    """A random linear teacher: W with entries N(0, 1 / n_relevant) (each output's signal
    has variance about 1), drawn from ``random_state`` (an int or ``np.random.Generator``)
    independently of ``n_irrelevant``.

    Examples
    --------
    >>> t = gaussian_teacher(2, 3, 2)
    >>> t.n_inputs, t.covariances()[1].shape
    (5, (5, 2))
    >>> bool(np.isclose(t.ib().mutual_information, t.with_irrelevant(0).ib().mutual_information))
    True
    """
    n_relevant = _check_int("n_relevant", n_relevant, 1)
    n_irrelevant = _check_int("n_irrelevant", n_irrelevant, 0)
    n_outputs = _check_int("n_outputs", n_outputs, 1)
    output_noise = _check_number("output_noise", output_noise, positive=True)
    rng = np.random.default_rng(random_state)
    weights = rng.standard_normal((n_outputs, n_relevant)) / math.sqrt(n_relevant)
    return GaussianTeacher(weights=weights, n_irrelevant=n_irrelevant, output_noise=output_noise)


# --------------------------------------------------------------------------- the information
def _logdet(m: np.ndarray) -> float:
    """log det of a symmetric positive-definite matrix, by Cholesky."""
    return 2.0 * float(np.sum(np.log(np.diag(np.linalg.cholesky(m)))))


def _conditional(cov_x: np.ndarray, cov_xv: np.ndarray, cov_v: np.ndarray) -> np.ndarray:
    """Sigma_x|v = Sigma_x - Sigma_xv Sigma_v^-1 Sigma_vx, symmetrised."""
    c = cov_x - cov_xv @ np.linalg.solve(cov_v, cov_xv.T)
    return 0.5 * (c + c.T)


def _mi_bits(a: np.ndarray, cov_x: np.ndarray, cov_x_given_v: np.ndarray,
             noise_var: float) -> float:
    """I(T;V) in bits for T = a X + N(0, noise_var I): 1/2 log det(a Sx a' + s2 I) -
    1/2 log det(a Sx|v a' + s2 I)."""
    eye = noise_var * np.eye(a.shape[0])
    return 0.5 * (_logdet(a @ cov_x @ a.T + eye) - _logdet(a @ cov_x_given_v @ a.T + eye)) / LN2


def channel_information(a: ArrayLike, cov_x: ArrayLike, cov_xy: ArrayLike, cov_y: ArrayLike, *,
                        noise_var: float) -> tuple[float, float]:
    """Exact (I(X;T), I(T;Y)) in bits of T = a X + Z, Z ~ N(0, noise_var I), for jointly
    Gaussian X, Y.

    Parameters
    ----------
    a : (k, d_x) array, the linear map (a layer's product of weights).
    cov_x, cov_xy, cov_y : (d_x, d_x), (d_x, d_y), (d_y, d_y) covariances of (X, Y).
    noise_var : sigma^2 > 0 of the added noise.

    Returns
    -------
    i_xt, i_ty : 1/2 log2 det(I + a Sx a' / s2) and 1/2 log2 det(a Sx a' + s2 I) -
    1/2 log2 det(a Sx|y a' + s2 I), bits.
    """
    noise_var = _check_number("noise_var", noise_var, positive=True)
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    cov_x, cov_xy, cov_y = (np.atleast_2d(np.asarray(c, dtype=np.float64))
                            for c in (cov_x, cov_xy, cov_y))
    if a.shape[1] != cov_x.shape[0] or cov_xy.shape != (cov_x.shape[0], cov_y.shape[0]):
        raise ValueError(f"a must be (k, d_x) and cov_xy (d_x, d_y) to match cov_x {cov_x.shape} "
                         f"and cov_y {cov_y.shape} (got a {a.shape}, cov_xy {cov_xy.shape})")
    i_xt = 0.5 * (_logdet(np.eye(a.shape[0]) + a @ cov_x @ a.T / noise_var)) / LN2
    return i_xt, _mi_bits(a, cov_x, _conditional(cov_x, cov_xy, cov_y), noise_var)


def _layer_information(a: np.ndarray, teacher: GaussianTeacher, noise_var: float,
                       covs) -> tuple[float, float, float]:
    """(I(X;T), I(T;Y), I(T;X_irr)) of one layer's map ``a``, bits."""
    i_xt, i_ty = channel_information(a, *covs, noise_var=noise_var)
    d_rel = teacher.n_relevant
    cov_x_given_irr = np.zeros_like(covs[0])  # Sigma_x = I: given X_irr, only X_rel varies
    cov_x_given_irr[:d_rel, :d_rel] = np.eye(d_rel)
    i_irr = _mi_bits(a, covs[0], cov_x_given_irr, noise_var) if teacher.n_irrelevant else 0.0
    return i_xt, i_ty, i_irr


# --------------------------------------------------------------------------- the network
def deep_linear_network(widths: Iterable[int]) -> nn.Sequential:
    """``nn.Sequential`` of bias-free ``nn.Linear`` layers fc1 .. fcL; ``widths`` lists every
    size, input to output, e.g. (16, 8, 8, 4): :func:`dnn.models.mlp` without activation and
    bias. :func:`train_deep_linear` initialises it with ``mlp_init("he", None, scale=...)``,
    weights N(0, init_scale^2 / fan_in)."""
    return mlp(widths, None, bias=False)


def _linears(model: nn.Module) -> list[nn.Linear]:
    """The network's layers fc1 .. fcL, in order."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _record(model: nn.Module, teacher: GaussianTeacher, noise_var: float, covs,
            x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, float, float]:
    """((L, 3) information of every layer, train loss, population loss) of the model now."""
    a = np.eye(teacher.n_inputs)
    info = []
    with torch.no_grad():
        for lin in _linears(model):
            a = lin.weight.detach().cpu().double().numpy() @ a
            info.append(_layer_information(a, teacher, noise_var, covs))
        train = 0.5 * float(((model(x) - y) ** 2).sum(dim=1).mean())
    err = a - teacher.full_weights()
    test = 0.5 * (float(np.sum(err ** 2)) + teacher.n_outputs * teacher.output_noise)
    return np.asarray(info), train, test


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class DeepLinearRun(Result):
    """One condition (task, method) trained over several seeds. Information in bits.

    Arrays are indexed (record E, seed S[, layer L]).

    Attributes
    ----------
    teacher : the :class:`GaussianTeacher` (its ``n_irrelevant`` is this condition's).
    method : "sgd" (minibatches of ``settings["batch_size"]``) or "gd" (full batch).
    epochs : (E,) the recorded epochs (0: the initial network).
    seeds : (S,) seeds; seed s draws the training sample and the initial weights.
    layers, layer_widths : (L,) names fc1 .. fcL and output sizes.
    i_xt, i_ty, i_xt_irrelevant : (E, S, L) I(X;T), I(T;Y) and I(T;X_irr) of T_l = A_l X + Z
        (0 without irrelevant dimensions).
    train_loss, test_loss : (E, S) 1/2 E||y_hat - y||^2 on the sample and the population.
    noise_var : sigma^2 of Z.
    settings : the training settings (JSON values) and the wall time.
    """

    teacher: GaussianTeacher
    method: str
    epochs: np.ndarray
    seeds: tuple
    layers: tuple
    layer_widths: tuple
    i_xt: np.ndarray
    i_ty: np.ndarray
    i_xt_irrelevant: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    noise_var: float
    settings: dict

    @property
    def name(self) -> str:
        """E.g. "SGD, 12 irrelevant dims"."""
        return f"{self.method.upper()}, {int(self.teacher.n_irrelevant)} irrelevant dims"

    def bound(self) -> GaussianIB:
        """The Gaussian IB of the task (:meth:`GaussianTeacher.ib`)."""
        return self.teacher.ib()

    def bound_excess(self) -> np.ndarray:
        """(E, S, L) I(T;Y) minus the bound at I(X;T), bits (<= 0 up to round-off)."""
        return self.i_ty - self.bound().bound(self.i_xt)

    def compression(self, *, threshold_bits: float = COMPRESSION_BITS) -> dict:
        """{layer: :func:`dnn.infoplane.compression` of its I(X;T), with "peak_epochs" (per
        seed), "change_bits" (last minus first record, mean over seeds) and "irrelevant"
        (the verdict of I(T;X_irr), None without irrelevant dims)}."""
        out = {}
        for k, layer in enumerate(self.layers):
            c = compression(self.i_xt[:, :, k], threshold_bits=threshold_bits)
            c["peak_epochs"] = self.epochs[np.argmax(self.i_xt[:, :, k], axis=0)].tolist()
            c["change_bits"] = float(np.mean(self.i_xt[-1, :, k] - self.i_xt[0, :, k]))
            c["irrelevant"] = (compression(self.i_xt_irrelevant[:, :, k], threshold_bits=threshold_bits)
                               if self.teacher.n_irrelevant else None)
            out[layer] = c
        return out

    def summary(self) -> dict:
        """Per layer the final information (mean over seeds), the gap below the bound and the
        compression verdicts; the losses; the bound check. JSON values, bits."""
        excess = float(np.max(self.bound_excess()))
        gap = -self.bound_excess()[-1].mean(axis=0)
        comp = self.compression()
        layers = {layer: {"width": int(self.layer_widths[k]),
                          "final_i_xt_bits": float(self.i_xt[-1, :, k].mean()),
                          "final_i_ty_bits": float(self.i_ty[-1, :, k].mean()),
                          "final_i_xt_irrelevant_bits": float(self.i_xt_irrelevant[-1, :, k].mean()),
                          "final_gap_bits": float(gap[k]),
                          "compression": comp[layer]}
                  for k, layer in enumerate(self.layers)}
        return {"name": self.name, "method": self.method,
                "n_relevant": self.teacher.n_relevant,
                "n_irrelevant": int(self.teacher.n_irrelevant),
                "final_train_loss": float(self.train_loss[-1].mean()),
                "final_test_loss": float(self.test_loss[-1].mean()),
                "bound_check": {"ok": excess <= BOUND_TOL, "max_excess_bits": excess,
                                "tol_bits": BOUND_TOL},
                "layers": layers, "settings": dict(self.settings)}

    def _columns(self) -> list:
        """One dict per (epoch, seed, layer): information (bits), the bound there, losses."""
        bound = self.bound().bound(self.i_xt)
        rows = []
        for e, epoch in enumerate(self.epochs):
            for s, seed in enumerate(self.seeds):
                for k, layer in enumerate(self.layers):
                    rows.append({"condition": self.name, "method": self.method,
                                 "n_irrelevant": int(self.teacher.n_irrelevant),
                                 "epoch": int(epoch), "seed": int(seed), "layer": layer,
                                 "i_xt_bits": float(self.i_xt[e, s, k]),
                                 "i_ty_bits": float(self.i_ty[e, s, k]),
                                 "i_xt_irrelevant_bits": float(self.i_xt_irrelevant[e, s, k]),
                                 "bound_bits": float(bound[e, s, k]),
                                 "train_loss": float(self.train_loss[e, s]),
                                 "test_loss": float(self.test_loss[e, s])})
        return rows


@dataclass(frozen=True)
class DeepLinearStudy(Result):
    """The conditions of :func:`deep_linear_experiment`, in the order (0 irrelevant, SGD),
    (0, GD), (k, SGD), (k, GD). Information in bits.

    ``runs`` : tuple of :class:`DeepLinearRun`.
    """

    runs: tuple

    def run(self, method: str, irrelevant: bool) -> DeepLinearRun:
        """The run of ``method`` ("sgd" or "gd") with or without irrelevant dimensions."""
        for r in self.runs:
            if r.method == method and bool(r.teacher.n_irrelevant) == bool(irrelevant):
                return r
        raise ValueError(f"no run with method={method!r}, irrelevant={irrelevant}")

    def summary(self) -> dict:
        """Every condition's :meth:`DeepLinearRun.summary`, the task's Gaussian IB, and per
        layer the compression verdict of I(X;T) (and of I(T;X_irr)) in each condition, and
        whether SGD and GD agree. JSON values, bits."""
        first = self.runs[0]
        conditions = {r.name: r.summary() for r in self.runs}
        verdicts = {layer: {n: c["layers"][layer]["compression"]["verdict"]
                            for n, c in conditions.items()} for layer in first.layers}
        irrelevant = {layer: {n: c["layers"][layer]["compression"]["irrelevant"]["verdict"]
                              for n, c in conditions.items()
                              if c["layers"][layer]["compression"]["irrelevant"] is not None}
                      for layer in first.layers}
        agree = {}
        for k in sorted({int(r.teacher.n_irrelevant) for r in self.runs}):
            pair = [conditions[r.name]["layers"] for r in self.runs if int(r.teacher.n_irrelevant) == k]
            if len(pair) == 2:
                agree[f"{k} irrelevant dims"] = {
                    layer: pair[0][layer]["compression"]["verdict"] == pair[1][layer]["compression"]["verdict"]
                    for layer in first.layers}
        return {"units": "bits", "noise_var": first.noise_var,
                "threshold_bits": COMPRESSION_BITS,
                "teacher": {"n_relevant": first.teacher.n_relevant,
                            "n_outputs": first.teacher.n_outputs,
                            "output_noise": first.teacher.output_noise},
                "gaussian_ib": first.bound().summary(),
                "bound_ok": all(c["bound_check"]["ok"] for c in conditions.values()),
                "verdicts": verdicts, "irrelevant_verdicts": irrelevant,
                "sgd_gd_agree": agree, "conditions": conditions}

    def _columns(self) -> list:
        """Every run's rows, concatenated."""
        return [row for r in self.runs for row in r._columns()]


# --------------------------------------------------------------------------- training
def train_deep_linear(teacher: GaussianTeacher, *, widths: Iterable[int] = (8, 8), method: str = "sgd",
                      epochs: int = 300, lr: float = 0.05, batch_size: int = 32,
                      n_train: int = 256, init_scale: float = 0.5, noise_var: float = 1.0,
                      seeds: int | Iterable[int] = (0, 1, 2), n_records: int = 30,
                      device: str | torch.device = "cpu",
                      callback: Callable[[int], object] | None = None) -> DeepLinearRun:
    """Train a deep linear network on the teacher's task and record its layers exactly.

    Per seed s: a training sample of ``n_train`` rows (``teacher.sample(n_train, s)``),
    weights N(0, init_scale^2 / fan_in) and the minibatch order from
    ``torch.Generator().manual_seed(s)``; plain SGD (no momentum) on 1/2 ||y_hat - y||^2 by
    :func:`dnn.loop.fit`, one step per minibatch of ``batch_size`` ("sgd") or one step per
    epoch on all rows ("gd").

    Parameters
    ----------
    teacher : the task (:func:`gaussian_teacher`).
    widths : hidden layer sizes (input and output sizes come from the teacher).
    method : "sgd" or "gd".
    epochs, lr, batch_size, n_train : the training (batch_size is ignored by "gd").
    init_scale : > 0; weights start N(0, init_scale^2 / fan_in).
    noise_var : sigma^2 > 0 of the noise added to each recorded layer.
    seeds : seeds (int or list of distinct ints >= 0).
    n_records : epochs recorded, log-spaced, 0 and the last included.
    device : "cpu", "cuda", "auto" or a torch.device.
    callback : optional callable ``callback(epoch)`` after every trained epoch of every seed.

    Returns
    -------
    DeepLinearRun
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)} (got {method!r})")
    epochs = _check_int("epochs", epochs, 1)
    n_train = _check_int("n_train", n_train, 1)
    batch_size = n_train if method == "gd" else _check_int("batch_size", batch_size, 1)
    lr = _check_number("lr", lr, positive=True)
    init_scale = _check_number("init_scale", init_scale, positive=True)
    noise_var = _check_number("noise_var", noise_var, positive=True)
    seeds = _check_seeds(seeds)
    widths = tuple(int(w) for w in widths)
    if widths and min(widths) < 1:
        raise ValueError(f"widths must be positive hidden layer sizes (got {list(widths)})")
    rec_epochs = log_epochs(epochs, n_records)
    record_set = {int(e) for e in rec_epochs}
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    covs = teacher.covariances()
    base = deep_linear_network((teacher.n_inputs, *widths, teacher.n_outputs))
    info, losses = [], []
    t0 = time.perf_counter()
    for seed in seeds:
        x_np, y_np = teacher.sample(n_train, seed)
        x = torch.as_tensor(x_np, dtype=torch.float32, device=dev)
        y = torch.as_tensor(y_np, dtype=torch.float32, device=dev)
        gen = torch.Generator().manual_seed(seed)
        model = deep_linear_network((teacher.n_inputs, *widths, teacher.n_outputs))
        mlp_init("he", None, scale=init_scale)(model, gen)
        model.to(dev)
        per_info, per_loss = [], []

        def record(epoch: int) -> None:
            if epoch in record_set:
                i, train, test = _record(model, teacher, noise_var, covs, x, y)
                per_info.append(i)
                per_loss.append((train, test))
            if epoch and callback is not None:
                callback(epoch)

        def loss_of_batch(idx: torch.Tensor) -> torch.Tensor:
            return 0.5 * ((model(x[idx]) - y[idx]) ** 2).sum(dim=1).mean()

        record(0)
        fit(list(model.parameters()), loss_of_batch, n_train, epochs=epochs,
            batch_size=batch_size, generator=gen, optimizer="sgd", lr=lr, device=dev,
            on_epoch=record)
        info.append(per_info)
        losses.append(per_loss)
    info_a = np.asarray(info).transpose(1, 0, 2, 3)  # (E, S, L, 3)
    loss_a = np.asarray(losses).transpose(1, 0, 2)  # (E, S, 2)
    settings = {"widths": list(widths), "method": method, "epochs": epochs, "lr": lr,
                "batch_size": batch_size, "n_train": n_train, "init_scale": init_scale,
                "optimizer": "plain SGD, no momentum", "loss": "1/2 squared error",
                "device": str(dev), "wall_time_s": time.perf_counter() - t0}
    return DeepLinearRun(
        teacher=teacher, method=method, epochs=np.asarray(rec_epochs, dtype=np.int64),
        seeds=seeds, layers=tuple(name for name, _ in base.named_children()),
        layer_widths=tuple(lin.out_features for lin in _linears(base)), i_xt=info_a[..., 0],
        i_ty=info_a[..., 1], i_xt_irrelevant=info_a[..., 2], train_loss=loss_a[..., 0],
        test_loss=loss_a[..., 1], noise_var=noise_var, settings=settings)


def deep_linear_experiment(teacher: GaussianTeacher | None = None, *, n_threads: int | None = None,
                           **options: Any) -> DeepLinearStudy:
    """The four conditions of Saxe et al.: without and with the teacher's irrelevant input
    dimensions, each by SGD and by full-batch GD.

    Parameters
    ----------
    teacher : default ``gaussian_teacher()`` (4 relevant, 12 irrelevant dimensions, 4
        outputs, output noise 0.1). It must have irrelevant dimensions; the runs without
        them use ``teacher.with_irrelevant(0)`` (the same W, the same X_rel and Y samples).
    n_threads : torch CPU threads while training (None leaves the setting alone).
    **options : for :func:`train_deep_linear` (all but ``method``), the same in every
        condition: per seed, the SGD and GD runs start from the same weights and sample.

    Returns
    -------
    DeepLinearStudy
    """
    teacher = gaussian_teacher() if teacher is None else teacher
    if not teacher.n_irrelevant:
        raise ValueError("teacher must have irrelevant dimensions (got n_irrelevant=0): the "
                         "study compares the task with and without them")
    if "method" in options:
        raise TypeError("method is not an option of deep_linear_experiment: it runs both")
    runs = []
    with torch_threads(n_threads):
        for task in (teacher.with_irrelevant(0), teacher):
            for method in METHODS:
                run = train_deep_linear(task, method=method, **options)
                logger.info("%s: %.1f s", run.name, run.settings["wall_time_s"])
                runs.append(run)
    return DeepLinearStudy(runs=tuple(runs))


# --------------------------------------------------------------------------- figures
def _new_axes(axes, shape, figsize) -> np.ndarray:
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(*shape, figsize=figsize, squeeze=False)
    return np.asarray(axes, dtype=object).reshape(shape)


def plot_linear_infoplane(run: DeepLinearRun, ax: Axes | None = None, *, cmap: str = "viridis",
                          colorbar: bool = True) -> Axes:
    """Each layer's path (mean over seeds, coloured by epoch) on the information plane under
    the task's analytic Gaussian IB curve (drawn up to the largest I(X;T); it saturates at
    I(X;Y), given in the legend). Bits. Returns the axes."""
    from matplotlib.colors import LogNorm

    ax = _new_axes(ax, (1, 1), (6.4, 4.8))[0, 0] if ax is None else ax
    epochs = _epoch_x(run.epochs)
    norm = LogNorm(vmin=epochs.min(), vmax=max(epochs.max(), epochs.min() * 1.0001))
    sc = None
    for k, layer in enumerate(run.layers):
        mx, my = run.i_xt[:, :, k].mean(axis=1), run.i_ty[:, :, k].mean(axis=1)
        ax.plot(mx, my, color="0.6", lw=0.7, zorder=2)
        sc = ax.scatter(mx, my, c=epochs, cmap=cmap, norm=norm, s=16, zorder=4, edgecolors="none")
        ax.annotate(layer, (mx[-1], my[-1]), textcoords="offset points", xytext=(3, -9), fontsize=7)
    ib = run.bound()
    grid = np.linspace(0.0, 1.05 * max(float(run.i_xt.max()), 1e-3), 400)
    ax.plot(grid, ib.bound(grid), "k-", lw=1.2, zorder=3,
            label=f"Gaussian IB bound (I(X;Y) = {ib.mutual_information:.3f})")
    if colorbar and sc is not None:
        ax.figure.colorbar(sc, ax=ax, label="epoch (0 at 0.5)")
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    ax.set_title(f"{run.name}: {len(run.seeds)} seeds, sigma^2 = {run.noise_var:g}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def plot_conditions(study: DeepLinearStudy, axes: AxesGrid | None = None) -> np.ndarray:
    """2 x 2 information planes: rows without / with irrelevant dimensions, columns SGD /
    GD. ``axes``: four axes (any shape) or None for a new figure. Returns the (2, 2) axes."""
    axes = _new_axes(axes, (2, 2), (11.0, 8.5))
    for i, irrelevant in enumerate((False, True)):
        for j, method in enumerate(METHODS):
            plot_linear_infoplane(study.run(method, irrelevant), ax=axes[i, j])
    return axes


def plot_irrelevant_information(study: DeepLinearStudy, axes: AxesGrid | None = None) -> np.ndarray:
    """For the runs with irrelevant dimensions (SGD, GD): per layer I(X;T) (solid) and
    I(T;X_irr) (dashed) against epoch, mean over seeds. Returns the (2,) axes."""
    axes = _new_axes(axes, (1, 2), (11.0, 4.0)).ravel()
    for ax, method in zip(axes, METHODS):
        run = study.run(method, True)
        x = _epoch_x(run.epochs)
        for k, layer in enumerate(run.layers):
            (line,) = ax.plot(x, run.i_xt[:, :, k].mean(axis=1), label=f"{layer} I(X;T)")
            ax.plot(x, run.i_xt_irrelevant[:, :, k].mean(axis=1), ls="--", color=line.get_color(),
                    label=f"{layer} I(T;X_irr)")
        ax.set_xscale("log")
        ax.set_xlabel("epoch (0 drawn at 0.5)")
        ax.set_ylabel("information [bits]")
        ax.set_title(f"{run.name}", fontsize=9)
        ax.legend(fontsize=7, ncol=2)
    return axes
