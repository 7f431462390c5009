"""Information in the weights (Achille, Paolini & Soatto 2019) and PAC-Bayes bounds.

For a network trained on N examples D, the information in the weights at trade-off beta is
the KL term of the minimiser of

    C_beta(q) = E_{w~q}[ L_D(w) ] + beta * KL( q(w|D) || p(w) ),   L_D(w) = sum_n CE_n(w)

with q = N(mu, diag s^2) and a data-independent prior p = N(w0, l^2 I) centred at the
initialisation (or at 0). L_D is the cross-entropy *summed* over the data set, in nats, the
convention in which beta = 1 is the ELBO and above which random labels are never worth
memorising (memorising N labels of entropy H saves N*H nats of loss and costs at least about
N*H nats of KL; a network, which spends more, stops below beta = 1, and true labels cost
less: :func:`random_labels_experiment`). Training divides the objective by N:
mean CE + (beta / N) KL. s is learned by the reparametrisation trick, w = mu + s * eps,
evaluated with ``torch.func.functional_call``.

Fisher approximation (docs/theory.rst section 6), derived here. Near a minimum w* of L_D, write
L_D(w* + d) ~ L_D(w*) + 1/2 d^T H d with H ~ N F (F: the per-sample model Fisher, the
Gauss-Newton matrix of the cross-entropy; ``dnn.fisher``). With mu = w* and diagonal H,

    E_q[L_D] + beta KL = const + sum_i [ 1/2 N F_ii s_i^2
                         + beta ( log(l / s_i) + (s_i^2 + (w*_i - w0_i)^2) / (2 l^2) - 1/2 ) ]

is minimised at s_i^2 = beta / (N F_ii + beta / l^2), where, with a_i = N l^2 F_ii / beta,

    KL = sum_i [ 1/2 log(1 + a_i) - a_i / (2 (1 + a_i)) + (w*_i - w0_i)^2 / (2 l^2) ]   nats.

docs/theory.rst's s^2 ~ beta / (2 F_ii) and KL ~ 1/2 sum log(1 + 2 l^2 F_ii / beta) follow the
paper's proposition, which (consistently with s^2 = beta/(2F)) expands the loss as
L* + tr(H Sigma) instead of L* + 1/2 tr(H Sigma): the factor 2 is off for a second-order
Taylor expansion. It also drops the -a/(2(1+a)) term (about -1/2 nat per well-determined
weight) and the mean term, and leaves the normalisation of F (per sample vs summed loss)
implicit. Both are natural-log quantities (nats); this module reports bits (/ ln 2). Both
versions are returned (``kl_fisher_bits``: the derivation above; ``kl_fisher_doc_bits``: the
docs/theory.rst formula with F -> N F) next to the KL actually reached by the optimisation.

PAC-Bayes (McAllester / Maurer; Dziugaite & Roy 2017): with probability >= 1 - delta over
the sample of N examples, for every q,

    kl( e_train(q) || e_test(q) ) <= ( KL(q||p) [nats] + log(2 sqrt(N) / delta) ) / N,

kl the binary KL in nats, e the 0-1 error averaged over q. The bound on e_test(q) inverts the
binary kl by bisection. e_train(q) is estimated with n_mc weight samples; the sample
convergence bound kl(e_hat || e_train) <= log(2 / delta_mc) / n_mc (Langford & Caruana)
turns the estimate into an upper bound first, so the final statement holds with probability
>= 1 - delta - delta_mc. A prior scale picked from a fixed grid of G values costs a union
bound: delta -> delta / G.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from ibsolver.results import Result, json_safe
from numpy.typing import ArrayLike

from .usable import _over_seeds

if TYPE_CHECKING:
    import torch
    from matplotlib.axes import Axes
    from torch import nn

    from .recording import Recording
    from .usable import RandomState

logger = logging.getLogger(__name__)

LN2 = math.log(2.0)

#: the fixed grid of prior scales searched by prior_scale="optimize" (union bound over it)
PRIOR_SCALE_GRID = tuple(float(v) for v in np.geomspace(1e-4, 10.0, 61))


# ----------------------------------------------------------------------------- binary kl

def binary_kl(p: ArrayLike, q: ArrayLike) -> np.ndarray | float:
    """kl(p || q) = p log(p/q) + (1-p) log((1-p)/(1-q)) in nats, elementwise; 0 log 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if np.any((p < 0) | (p > 1)) or np.any((q < 0) | (q > 1)):
        raise ValueError(f"p and q must lie in [0, 1] (got p={p!r}, q={q!r})")
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log(p / q), 0.0)
        b = np.where(p < 1, (1 - p) * np.log((1 - p) / (1 - q)), 0.0)
    out = a + b
    return out if out.ndim else out.item()


def invert_binary_kl(p: float, c: float, *, tol: float = 1e-12, max_iter: int = 200) -> float:
    """The largest q in [p, 1] with kl(p || q) <= c (nats), by bisection.

    kl(p || .) is increasing on [p, 1], from 0 at q = p to +inf at q = 1 (for p < 1), so the
    answer is unique; it is 1 when c is large enough (or p = 1) and p when c = 0.
    """
    p, c = float(p), float(c)
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ValueError(f"p must be an error rate in [0, 1] (got {p!r})")
    if math.isnan(c) or c < 0:
        raise ValueError(f"c must be >= 0 (got {c!r})")
    if p >= 1.0 or c == math.inf:
        return 1.0
    if c == 0.0:
        return p
    # kl(p || 1) = +inf for p < 1; for p = 0, kl(0 || q) = -log(1 - q) -> closed form
    if p == 0.0:
        return float(-math.expm1(-c))
    lo, hi = p, 1.0
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        if binary_kl(p, mid) > c:
            hi = mid
        else:
            lo = mid
        if hi - lo < tol:
            break
    return float(lo)


@dataclass(frozen=True)
class PacBayesBound:
    """PAC-Bayes bound on the expected 0-1 test error of a posterior q.

    Attributes
    ----------
    bound : upper bound on e_test(q), holding with probability >= 1 - delta - delta_mc.
    train_error : the estimate of e_train(q) that was given.
    train_error_upper : its upper bound after the Monte-Carlo correction (= train_error when
        no correction was asked).
    kl_bits : KL(q || p) in bits. rhs : (KL_nats + log(2 sqrt(N)/delta)) / N, nats.
    """

    bound: float
    train_error: float
    train_error_upper: float
    kl_bits: float
    n: int
    delta: float
    delta_mc: float
    n_mc: int | None
    rhs: float


def pac_bayes_bound(train_error: float, kl_bits: float, n: int, *, delta: float = 0.05,
                    n_mc: int | None = None, delta_mc: float = 0.01,
                    n_priors: int = 1) -> PacBayesBound:
    """Bound the test error from the training error of q and KL(q||p) (given in bits).

    Parameters
    ----------
    train_error : e_train(q) in [0, 1] (exact, or a mean over ``n_mc`` weight samples).
    kl_bits : KL(q || p) in bits (converted to nats inside).
    n : number of training examples.
    delta : confidence of the PAC-Bayes step.
    n_mc, delta_mc : when the training error is a Monte-Carlo mean over ``n_mc`` samples of
        q, first bound it by inverting kl <= log(2 / delta_mc) / n_mc.
    n_priors : size of the grid the prior was picked from (union bound: delta / n_priors).
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer (got {n!r})")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1) (got {delta!r})")
    if not (kl_bits >= 0 and math.isfinite(kl_bits)):
        raise ValueError(f"kl_bits must be a finite number >= 0 (got {kl_bits!r})")
    if int(n_priors) != n_priors or n_priors < 1:
        raise ValueError(f"n_priors must be a positive integer (got {n_priors!r})")
    e_up = float(train_error)
    if not 0.0 <= e_up <= 1.0:
        raise ValueError(f"train_error must be in [0, 1] (got {train_error!r})")
    if n_mc is not None:
        if int(n_mc) != n_mc or n_mc < 1:
            raise ValueError(f"n_mc must be a positive integer or None (got {n_mc!r})")
        if not 0.0 < delta_mc < 1.0:
            raise ValueError(f"delta_mc must be in (0, 1) (got {delta_mc!r})")
        e_up = invert_binary_kl(e_up, math.log(2.0 / delta_mc) / n_mc)
    d = delta / n_priors
    rhs = (kl_bits * LN2 + math.log(2.0 * math.sqrt(n) / d)) / n
    return PacBayesBound(bound=invert_binary_kl(e_up, rhs), train_error=float(train_error),
                         train_error_upper=e_up, kl_bits=float(kl_bits), n=int(n),
                         delta=float(delta), delta_mc=float(delta_mc) if n_mc else 0.0,
                         n_mc=None if n_mc is None else int(n_mc), rhs=rhs)


# ------------------------------------------------------------------------- Gaussian KL

def gaussian_kl(mu_q: ArrayLike, sigma_q: ArrayLike, mu_p: ArrayLike, sigma_p: ArrayLike) -> float:
    """KL( N(mu_q, diag sigma_q^2) || N(mu_p, diag sigma_p^2) ) in bits (arrays broadcast).

    Per coordinate: log(sigma_p / sigma_q) + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2)
    - 1/2 nats.
    """
    mu_q, sigma_q, mu_p, sigma_p = (np.asarray(a, dtype=np.float64)
                                    for a in (mu_q, sigma_q, mu_p, sigma_p))
    if np.any(sigma_q <= 0) or np.any(sigma_p <= 0):
        raise ValueError("sigma_q and sigma_p must be positive")
    nats = (np.log(sigma_p / sigma_q) + (sigma_q ** 2 + (mu_q - mu_p) ** 2) / (2 * sigma_p ** 2)
            - 0.5)
    return float(np.sum(np.broadcast_to(nats, np.broadcast(mu_q, sigma_q, mu_p, sigma_p).shape))
                 / LN2)


def _kl_nats_torch(mu, log_s, w0, log_l):
    """Sum over every coordinate of KL(N(mu, s^2) || N(w0, l^2)), nats (torch)."""
    import torch

    total = 0.0
    for k in mu:
        s2 = torch.exp(2 * log_s[k])
        total = total + (log_l - log_s[k] + (s2 + (mu[k] - w0[k]) ** 2)
                         / (2 * torch.exp(2 * log_l)) - 0.5).sum()
    return total


def fisher_kl_approximation(fisher_diag: Mapping[str, ArrayLike], w_star: Mapping[str, ArrayLike],
                            w0: Mapping[str, ArrayLike], *, beta: float, prior_scale: float,
                            n_samples: int) -> tuple[tuple[float, float], float, dict[str, np.ndarray]]:
    """Quadratic (Fisher) approximation of the optimal KL, in nats; see the module docstring.

    Returns ((kl_derived_nats, kl_derived_without_mean_term_nats), kl_doc_nats, sigma_opt)
    with sigma_opt = {name: optimal s}.
    ``fisher_diag`` is the per-sample mean model Fisher diagonal (``FisherInfo.diagonal``).
    """
    l2 = float(prior_scale) ** 2
    kl, kl_noise, kl_doc, sig = 0.0, 0.0, 0.0, {}
    for k, f in fisher_diag.items():
        f = np.asarray(f, dtype=np.float64)
        a = n_samples * l2 * f / beta
        d2 = (np.asarray(w_star[k], dtype=np.float64) - np.asarray(w0[k], dtype=np.float64)) ** 2
        noise = float(np.sum(0.5 * np.log1p(a) - a / (2 * (1 + a))))
        kl_noise += noise
        kl += noise + float(np.sum(d2 / (2 * l2)))
        kl_doc += float(np.sum(0.5 * np.log1p(2 * a)))
        sig[k] = np.sqrt(beta / (n_samples * f + beta / l2))
    return (kl, kl_noise), kl_doc, sig


# ----------------------------------------------------------------- posterior fitting

@dataclass(frozen=True)
class WeightsInformation(Result):
    """A fitted Gaussian posterior q = N(mu, diag s^2) against the prior N(w0, l^2 I).

    ``save``/``load`` (one .npz, no pickle; ``sigma`` and ``sigma_fisher`` under
    ``sigma/<parameter>`` and ``sigma_fisher/<parameter>``), ``summary()`` (plain JSON
    values, NaN as None) and ``to_dataframe()`` (one row per parameter) as every
    ``ibsolver`` result. The network and its weights mu are not part of the result.

    Attributes
    ----------
    kl_bits : KL(q || p), bits (the information in the weights at this beta).
    expected_ce_bits : E_q[ mean training cross-entropy ], bits per example.
    objective_bits : (E_q[sum CE] + beta KL) / N, bits per example.
    train_error, test_error : E_q of the 0-1 error (Monte Carlo, ``n_mc`` samples).
    test_error_mean : test error of the mean network mu.
    kl_fisher_bits, kl_fisher_doc_bits : the Fisher approximations of the KL (derived, and
        docs/theory.rst's formula), at mu (None unless asked for). kl_fisher_noise_bits: the
        derived one without the mean term sum (mu - w0)^2 / (2 l^2) -- the part docs/theory.rst's
        formula approximates.
    sigma, sigma_fisher : {parameter: s} fitted, and predicted by the Fisher approximation.
    pac_bayes : PacBayesBound on the test error (None if not asked for).
    history : {"objective_bits": [...], "kl_bits": [...], "expected_ce_bits": [...]} per epoch.
    """

    kl_bits: float
    expected_ce_bits: float
    objective_bits: float
    beta: float
    prior_scale: float
    prior_center: str
    learn_mean: bool
    train_error: float
    test_error: float | None
    test_error_mean: float | None
    kl_fisher_bits: float | None
    kl_fisher_doc_bits: float | None
    kl_fisher_noise_bits: float | None
    pac_bayes: PacBayesBound | None
    n_samples: int
    n_params: int
    epochs: int
    lr: float
    n_mc: int
    sigma: dict = field(repr=False, default_factory=dict)
    sigma_fisher: dict = field(repr=False, default_factory=dict)
    history: dict = field(repr=False, default_factory=dict)

    def summary(self) -> dict:
        """The numbers of the fit (KL and its Fisher approximations, expected cross-entropy
        and objective in bits; errors; the prior; sizes and settings) and, where computed,
        the PAC-Bayes bound with its confidences, as plain JSON values; NaN as None."""
        d = {k: getattr(self, k) for k in (
            "kl_bits", "expected_ce_bits", "objective_bits", "beta", "prior_scale",
            "prior_center", "learn_mean", "train_error", "test_error", "test_error_mean",
            "kl_fisher_bits", "kl_fisher_noise_bits", "kl_fisher_doc_bits", "n_samples",
            "n_params", "epochs", "lr", "n_mc")}
        if self.pac_bayes is not None:
            d.update(pac_bayes_bound=self.pac_bayes.bound,
                     pac_bayes_train_error_upper=self.pac_bayes.train_error_upper,
                     pac_bayes_delta=self.pac_bayes.delta,
                     pac_bayes_delta_mc=self.pac_bayes.delta_mc)
        return json_safe(d)

    def _columns(self) -> list:
        """One row per parameter: its number of weights, the mean, smallest and largest
        fitted s, and the mean s the Fisher approximation predicts (NaN where not
        computed)."""
        rows = []
        for name, s in self.sigma.items():
            s = np.asarray(s, dtype=np.float64)
            f = self.sigma_fisher.get(name)
            rows.append({"parameter": name, "n_weights": int(s.size),
                         "sigma_mean": float(s.mean()) if s.size else float("nan"),
                         "sigma_min": float(s.min()) if s.size else float("nan"),
                         "sigma_max": float(s.max()) if s.size else float("nan"),
                         "sigma_fisher_mean": (float(np.mean(f)) if f is not None
                                               and np.size(f) else float("nan")),
                         "beta": self.beta, "prior_scale": self.prior_scale})
        return rows


def _sample_eval(model, mu, log_s, frozen, buffers, x, y, n_mc, gen, batch=4096):
    """E_q over n_mc weight samples of (mean CE nats, 0-1 error); also per-sample errors."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    from .fisher import as_logits

    ces, errs = [], []
    with torch.no_grad():
        for _ in range(n_mc):
            w = {k: mu[k] + torch.exp(log_s[k]) * torch.randn(mu[k].shape, generator=gen)
                 .to(mu[k].device) for k in mu}
            ce, err = 0.0, 0.0
            for s in range(0, len(x), batch):
                out = as_logits(functional_call(model, ({**frozen, **w}, buffers),
                                                (x[s:s + batch],)))
                ce += F.cross_entropy(out, y[s:s + batch], reduction="sum").item()
                err += (out.argmax(1) != y[s:s + batch]).sum().item()
            ces.append(ce / len(x))
            errs.append(err / len(x))
    return float(np.mean(ces)), float(np.mean(errs))


def fit_weight_posterior(model: nn.Module, x: ArrayLike | torch.Tensor, y: ArrayLike | torch.Tensor, *,
                         beta: float = 1.0, prior_center: str = "init",
                         init_state: Mapping[str, ArrayLike | torch.Tensor] | None = None,
                         prior_scale: float | str = "optimize",
                         learn_mean: bool = False, init_sigma: float = 1e-2, epochs: int = 100,
                         lr: float = 0.05, lr_mean: float = 1e-3, batch_size: int = 256,
                         n_mc: int = 500,
                         x_test: ArrayLike | torch.Tensor | None = None,
                         y_test: ArrayLike | torch.Tensor | None = None, fisher: bool = True,
                         delta: float = 0.05, delta_mc: float = 0.01,
                         random_state: RandomState = 0,
                         progress: Callable[[int], object] | None = None,
                         device: str | torch.device = "cpu") -> WeightsInformation:
    """Fit q = N(mu, diag s^2) minimising E_q[sum CE] + beta KL(q || N(w0, l^2 I)).

    Parameters
    ----------
    model : a trained torch classifier (C logits, or one output unit read as a Bernoulli
        logit); its weights are w* (the mean of q, and the start of mu when
        ``learn_mean``). Not modified.
    x, y : the N training examples (the data the bound is about).
    beta : the trade-off (> 0); beta = 1 is the ELBO / PAC-Bayes-optimal weighting.
    prior_center : "init" (w0 = ``init_state``, the data-independent initialisation) or
        "zero".
    init_state : {parameter name: tensor} at initialisation (needed for "init").
    prior_scale : a number l, or "optimize": at every step l^2 = mean(s^2 + (mu - w0)^2) (the
        KL-minimising scale), snapped at the end to the nearest value of
        ``PRIOR_SCALE_GRID``; the bound then pays the union bound over that grid.
    learn_mean : also learn mu (starting at w*); False keeps mu = w* fixed, True is what the
        random-label experiment and a tighter PAC-Bayes bound (Dziugaite & Roy) use.
    init_sigma : initial s of every weight.
    epochs, lr, lr_mean, batch_size : Adam on log s (lr) and mu (lr_mean), one weight
        sample per minibatch.
    n_mc : weight samples for the final E_q[CE], train and test errors.
    x_test, y_test : optional held-out set for the measured test error.
    fisher : also compute the Fisher approximation of the KL at mu.
    delta, delta_mc : confidence of the PAC-Bayes and Monte-Carlo steps (the bound is
        returned when the labels are integers of a classification task).
    random_state : seed of the weight noise and the minibatch order.
    progress : optional callable invoked once per epoch.
    """
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    from ._info_utils import make_generator, to_tensor
    from .fisher import as_logits, fisher_diagonal
    from .loop import fit
    from .models import resolve_device

    beta = float(beta)
    if not (beta > 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be a positive number (got {beta!r})")
    if prior_center not in ("init", "zero"):
        raise ValueError(f"prior_center must be 'init' or 'zero' (got {prior_center!r})")
    if prior_center == "init" and init_state is None:
        raise ValueError("init_state must give the initial weights when prior_center='init' "
                         "(got None); pass prior_center='zero' otherwise")
    optimize_scale = isinstance(prior_scale, str)
    if optimize_scale and prior_scale != "optimize":
        raise ValueError("prior_scale must be a positive number or 'optimize' "
                         f"(got {prior_scale!r})")
    if not optimize_scale and not (float(prior_scale) > 0):
        raise ValueError(f"prior_scale must be positive (got {prior_scale!r})")
    if not init_sigma > 0:
        raise ValueError(f"init_sigma must be positive (got {init_sigma!r})")
    for name, val in (("epochs", epochs), ("batch_size", batch_size), ("n_mc", n_mc)):
        if isinstance(val, bool) or int(val) != val or val < (0 if name == "epochs" else 1):
            raise ValueError(f"{name} must be a positive integer (got {val!r})")

    dev = resolve_device(device) if isinstance(device, str) else device
    gen = make_generator(random_state)
    xt, yt = to_tensor(x, device=dev), to_tensor(y, torch.long, dev)
    n = xt.shape[0]
    if yt.shape != (n,):
        raise ValueError(f"y must have shape ({n},) (got {tuple(yt.shape)})")
    was_training = model.training
    model.eval()
    named = {k: v.detach().clone().to(dev) for k, v in model.named_parameters()}
    buffers = {k: v.detach().to(dev) for k, v in model.named_buffers()}
    if prior_center == "init":
        missing = [k for k in named if k not in init_state]
        if missing:
            raise ValueError(f"init_state lacks parameters {missing[:5]}")
        w0 = {k: torch.as_tensor(init_state[k]).detach().to(dev, named[k].dtype).clone()
              for k in named}
    else:
        w0 = {k: torch.zeros_like(v) for k, v in named.items()}
    mu = {k: v.clone().requires_grad_(learn_mean) for k, v in named.items()}
    log_s = {k: torch.full_like(v, math.log(init_sigma)).requires_grad_() for k, v in named.items()}
    n_params = sum(v.numel() for v in named.values())

    def best_log_l():
        with torch.no_grad():
            tot = sum((torch.exp(2 * log_s[k]) + (mu[k] - w0[k]) ** 2).sum() for k in mu)
            return 0.5 * torch.log(tot / n_params)

    fixed_log_l = None if optimize_scale else torch.tensor(math.log(float(prior_scale)))
    history = {"objective_bits": [], "kl_bits": [], "expected_ce_bits": []}
    steps = []  # (CE, KL) in nats of every minibatch of the current epoch

    def loss_of_batch(idx):
        # one weight sample per minibatch, drawn after the epoch's order from the same gen
        eps = {k: torch.randn(v.shape, generator=gen).to(dev) for k, v in mu.items()}
        w = {k: mu[k] + torch.exp(log_s[k]) * eps[k] for k in mu}
        ce = F.cross_entropy(as_logits(functional_call(model, (w, buffers), (xt[idx],))),
                             yt[idx])
        kl = _kl_nats_torch(mu, log_s, w0, best_log_l() if optimize_scale else fixed_log_l)
        steps.append((ce.item(), kl.item()))
        return ce + beta * kl / n

    def end_epoch(_epoch):
        ce, kl = sum(c for c, _ in steps) / len(steps), steps[-1][1]
        steps.clear()
        history["expected_ce_bits"].append(ce / LN2)
        history["kl_bits"].append(kl / LN2)
        history["objective_bits"].append((ce + beta * kl / n) / LN2)
        if progress is not None:
            progress(1)

    groups: list[dict] = [{"params": list(log_s.values())}]
    if learn_mean:
        groups.append({"params": list(mu.values()), "lr": lr_mean})
    fit(groups, loss_of_batch, n, epochs=int(epochs), batch_size=int(batch_size),
        generator=gen, optimizer="adam", lr=lr, device=dev, on_epoch=end_epoch)

    n_priors = 1
    if optimize_scale:
        grid = np.asarray(PRIOR_SCALE_GRID)
        # choose the grid scale with the smallest KL for the fitted q
        with torch.no_grad():
            kls = [_kl_nats_torch(mu, log_s, w0, torch.tensor(math.log(g))).item() for g in grid]
        l_final = float(grid[int(np.argmin(kls))])
        n_priors = len(grid)
    else:
        l_final = float(prior_scale)
    mu_d = {k: v.detach() for k, v in mu.items()}
    ls_d = {k: v.detach() for k, v in log_s.items()}
    with torch.no_grad():
        kl_nats = _kl_nats_torch(mu_d, ls_d, w0, torch.tensor(math.log(l_final))).item()
    ce_nats, train_err = _sample_eval(model, mu_d, ls_d, {}, buffers, xt, yt, n_mc, gen)
    test_err = test_err_mean = None
    if x_test is not None and y_test is not None:
        xte, yte = to_tensor(x_test, device=dev), to_tensor(y_test, torch.long, dev)
        _, test_err = _sample_eval(model, mu_d, ls_d, {}, buffers, xte, yte, n_mc, gen)
        with torch.no_grad():
            out = as_logits(functional_call(model, (mu_d, buffers), (xte,)))
            test_err_mean = float((out.argmax(1) != yte).float().mean().item())
    kl_f = kl_doc = kl_noise = None
    sigma_f = {}
    if fisher:
        # the Fisher at mu (a copy of the model carries mu)
        import copy

        m2 = copy.deepcopy(model).to(dev)
        with torch.no_grad():
            for k, p in m2.named_parameters():
                p.copy_(mu_d[k])
        fi = fisher_diagonal(m2, xt, kind="model")
        kf, kd, sigma_f = fisher_kl_approximation(
            fi.diagonal, {k: v.cpu().numpy() for k, v in mu_d.items()},
            {k: v.cpu().numpy() for k, v in w0.items()}, beta=beta, prior_scale=l_final,
            n_samples=n)
        kl_f, kl_doc, kl_noise = kf[0] / LN2, kd / LN2, kf[1] / LN2
    bound = pac_bayes_bound(train_err, kl_nats / LN2, n, delta=delta, n_mc=n_mc,
                            delta_mc=delta_mc, n_priors=n_priors)
    if was_training:
        model.train()
    logger.info("beta=%g: KL %.1f bits, E_q CE %.3f bits, train err %.3f, bound %.3f",
                beta, kl_nats / LN2, ce_nats / LN2, train_err, bound.bound)
    return WeightsInformation(
        kl_bits=kl_nats / LN2, expected_ce_bits=ce_nats / LN2,
        objective_bits=(ce_nats + beta * kl_nats / n) / LN2, beta=beta, prior_scale=l_final,
        prior_center=prior_center, learn_mean=bool(learn_mean), train_error=train_err,
        test_error=test_err, test_error_mean=test_err_mean, kl_fisher_bits=kl_f,
        kl_fisher_doc_bits=kl_doc, pac_bayes=bound, n_samples=int(n), n_params=int(n_params),
        epochs=int(epochs), lr=float(lr), n_mc=int(n_mc), kl_fisher_noise_bits=kl_noise,
        sigma={k: np.exp(v.cpu().numpy()) for k, v in ls_d.items()}, sigma_fisher=sigma_f,
        history=history)


# ------------------------------------------------------------ one trained network

@dataclass(frozen=True)
class NetworkWeights(Result):
    """What :func:`weights_of_digits_mlp` found: a trained network and the information in
    its weights, in bits.

    ``save``/``load`` (one .npz, no pickle, both parts whole), ``summary()`` and
    ``to_dataframe()`` (one row per parameter tensor: the posterior's table) as every
    ``ibsolver`` result.

    Attributes
    ----------
    recording : dnn.Recording
        The network's training (one seed; its final weights are w*).
    posterior : WeightsInformation
        The Gaussian posterior fitted around w* against the prior centred at the network's
        initialisation, with the PAC-Bayes bound on its test error.
    """

    recording: Recording
    posterior: WeightsInformation

    def summary(self) -> dict:
        """:meth:`WeightsInformation.summary` of the posterior, then the network's own test
        and training error (its final record), its hidden widths, its training epochs and
        the task: plain JSON values, bits, NaN as None."""
        rec = self.recording
        return json_safe({**self.posterior.summary(),
                          "network_test_error": 1 - float(rec.test_acc[-1, 0]),
                          "network_train_error": 1 - float(rec.train_acc[-1, 0]),
                          "hidden": rec.settings["hidden"],
                          "network_epochs": rec.settings["epochs"], "task": rec.name})

    def _columns(self) -> list:
        """One row per parameter tensor of the posterior."""
        return self.posterior._columns()


def weights_of_digits_mlp(*, hidden: Sequence[int] = (64,), epochs: int = 30, n_train: int = 1000,
                          random_state: RandomState = 0,
                          progress: Callable[[int], object] | None = None,
                          device: str | torch.device = "cpu",
                          **posterior: Any) -> NetworkWeights:
    """Train a ReLU MLP on ``n_train`` of scikit-learn's digits (plain SGD, batch 32, lr 0.05),
    then fit its weight posterior on them (:func:`fit_weight_posterior`, prior centred at the
    network's initialisation; ``posterior`` holds its options, ``posterior_epochs`` its
    epochs), with the other digits as the test set. Returns a :class:`NetworkWeights`
    (the Recording and the WeightsInformation).
    """
    from ._info_utils import make_generator, seed_from, stratified_split
    from .experiments import train_mlp
    from .loop import initial_network
    from .models import mlp, mlp_init
    from .tasks.digits import digits

    gen = make_generator(random_state)
    task = digits("fine")
    tr, te = stratified_split(task.n, n_train / task.n, seed_from(gen))
    seed = seed_from(gen)
    rec = train_mlp(task.x, task.labels, tr, te[:1], te, hidden=hidden, epochs=epochs,
                    record_epochs=[epochs], seeds=[seed], progress=progress, device=device,
                    name=task.name)
    model = mlp((task.x.shape[1],) + tuple(hidden) + (task.n_classes,), "relu")
    init = initial_network(model, seed, mlp_init("he", "relu"))
    posterior = dict(posterior)
    res = fit_weight_posterior(
        rec.network(model), task.x[tr], task.labels[tr],
        init_state={k: v.detach() for k, v in init.named_parameters()},
        epochs=posterior.pop("posterior_epochs", 100),
        x_test=task.x[te], y_test=task.labels[te], random_state=seed_from(gen),
        progress=progress, device=device, **posterior)
    return NetworkWeights(recording=rec, posterior=res)


# -------------------------------------------------------------- true and random labels

#: a labelling "fits" at a beta when the E_q training error (0-1) is at most this in every
#: seed: a fifth of the chance level of two balanced classes
FIT_ERROR = 0.1


@dataclass(frozen=True)
class RandomLabels(Result):
    """Information in the weights of one network fitted to true and to random labels.

    ``save``/``load`` (one .npz, no pickle), ``summary()`` and ``to_dataframe()`` as every
    ``ibsolver`` result.

    Every array is indexed (labelling, beta, seed); information in bits, errors the 0-1
    error averaged over q.

    Attributes
    ----------
    labels : ("true", "random").
    betas : (B,) the trade-offs.
    seeds : the networks' seeds (S).
    kl_bits : KL(q || p), the information in the weights.
    expected_ce_bits : E_q mean training cross-entropy, bits per example.
    train_error, test_error : E_q error on the N training images and on ``n_test`` held-out
        ones, labelled the same way (so the random labels' test error is chance).
    pac_bayes_bound : the PAC-Bayes bound on the test error of q (:func:`pac_bayes_bound`).
    prior_scale : the prior's standard deviation picked for each fit.
    network_train_error : (labelling, seed) training error of the network w* the
        posteriors start from.
    n_samples, n_test, n_params : sizes; settings : the experiment's options.
    """

    labels: tuple
    betas: np.ndarray
    seeds: tuple
    kl_bits: np.ndarray
    expected_ce_bits: np.ndarray
    train_error: np.ndarray
    test_error: np.ndarray
    pac_bayes_bound: np.ndarray
    prior_scale: np.ndarray
    network_train_error: np.ndarray
    n_samples: int
    n_test: int
    n_params: int
    settings: dict = field(default_factory=dict)

    def summary(self, *, fit_error: float = FIT_ERROR) -> dict:
        """The JSON-ready comparison of true and random labels.

        Parameters
        ----------
        fit_error : float
            A labelling fits at a beta when its E_q training error is at most this in
            every seed.

        Returns
        -------
        dict
            "per_beta": for every beta and labelling, KL (bits; {"mean", "std", "min",
            "max"} over seeds), KL per example (mean, bits), training and test error and the
            PAC-Bayes bound over seeds, and whether it fits; "both_fit": for every beta at
            which both labellings fit, the mean KL of each, their ratio (random / true) and
            whether random labels take more KL in every seed (same seed = same initial
            network); "verdict": that comparison in words. With the sizes and settings.
        """
        t, r = self.labels.index("true"), self.labels.index("random")
        fits = self.train_error.max(axis=2) <= fit_error          # (labelling, beta)
        per_beta, both = [], []
        for b, beta in enumerate(self.betas):
            per_beta.append({"beta": float(beta), **{lab: {
                "kl_bits": _over_seeds(self.kl_bits[i, b]),
                "kl_bits_per_example": float(self.kl_bits[i, b].mean() / self.n_samples),
                "train_error": _over_seeds(self.train_error[i, b]),
                "test_error": _over_seeds(self.test_error[i, b]),
                "pac_bayes_bound": _over_seeds(self.pac_bayes_bound[i, b]),
                "fits": bool(fits[i, b])}
                for i, lab in enumerate(self.labels)}})
            if fits[t, b] and fits[r, b]:
                kt, kr = self.kl_bits[t, b], self.kl_bits[r, b]
                both.append({"beta": float(beta), "kl_true_bits": float(kt.mean()),
                             "kl_random_bits": float(kr.mean()),
                             "ratio": float(kr.mean() / kt.mean()),
                             "random_more_in_every_seed": bool(np.all(kr > kt))})
        if both:
            more = sum(c["random_more_in_every_seed"] for c in both)
            ratios = ", ".join(f"{c['ratio']:.1f}x at beta {c['beta']:g}" for c in both)
            verdict = (f"where both fit, random labels take {ratios} the information in the "
                       f"weights of true labels (more in every seed at {more} of "
                       f"{len(both)} betas)")
        else:
            verdict = (f"no beta at which both labellings fit (E_q training error <= "
                       f"{fit_error:g} in every seed)")
        return {"labels": list(self.labels), "seeds": list(self.seeds),
                "n_samples": self.n_samples, "n_test": self.n_test, "n_params": self.n_params,
                "settings": self.settings, "fit_error": float(fit_error), "per_beta": per_beta,
                "both_fit": both, "verdict": verdict}

    def _columns(self) -> list:
        """One dict per (labelling, beta, seed): KL (bits, and per example), E_q
        cross-entropy (bits per example), training and test error, the PAC-Bayes bound and
        the prior's scale."""
        return [{"labels": lab, "beta": float(beta), "seed": seed,
                 "kl_bits": float(self.kl_bits[i, b, k]),
                 "kl_bits_per_example": float(self.kl_bits[i, b, k] / self.n_samples),
                 "expected_ce_bits": float(self.expected_ce_bits[i, b, k]),
                 "train_error": float(self.train_error[i, b, k]),
                 "test_error": float(self.test_error[i, b, k]),
                 "pac_bayes_bound": float(self.pac_bayes_bound[i, b, k]),
                 "prior_scale": float(self.prior_scale[i, b, k]), "n_samples": self.n_samples}
                for i, lab in enumerate(self.labels) for b, beta in enumerate(self.betas)
                for k, seed in enumerate(self.seeds)]


def random_labels_experiment(betas: ArrayLike = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0), *,
                             n_samples: int = 100, n_test: int = 500, hidden: Sequence[int] = (32,),
                             seeds: Iterable[int] = (0, 1, 2), train_epochs: int = 100,
                             epochs: int = 300, lr: float = 0.05, lr_mean: float = 1e-2,
                             prior_scale: float | str = "optimize", init_sigma: float = 0.01,
                             n_mc: int = 100, random_state: RandomState = 0,
                             progress: Callable[[int], object] | None = None,
                             device: str | torch.device = "cpu") -> RandomLabels:
    """Information in the weights of one network for true and for random labels, over beta.

    The data: ``n_samples`` training and ``n_test`` held-out images of scikit-learn's
    digits (drawn by ``random_state``); the true labels are their parity (1 bit), the random
    labels the same labels shuffled across the images (the same marginal, independent of
    the image). The network: a ReLU MLP 64-``hidden``-2 with He initialisation w0 drawn
    from the seed. For each seed and labelling, the network is trained from w0 to w*
    (Adam, lr 0.01, full batch, ``train_epochs``), then for every beta the posterior
    q = N(mu, diag s^2) is fitted from w* (mean learned, :func:`fit_weight_posterior`,
    full batch, ``epochs`` at ``lr`` and ``lr_mean``) against the prior N(w0, l^2 I). Both
    labellings of a seed start from the same w0 and draw the same minibatch order and
    weight noise: they differ by their labels only.

    Why random labels are not memorised at large beta: for labels Y^N independent of x,
    any posterior q(w | Y^N) has E[N H(Y) - E_q sum CE] <= I(Y^N; W) <= E[KL(q || p)]
    (cross-entropy >= conditional entropy; the mutual information is the KL to the
    *mixture* of the posteriors, the smallest over priors). So E_q[sum CE] + beta KL >=
    N H(Y) + (beta - 1) KL: above beta = 1 memorising never pays (in expectation over
    labelings), and a network, which spends more KL per label than an ideal code, stops
    memorising at a smaller beta. True labels are predictable from the image: fitting
    them costs less KL at the same beta.

    Returns
    -------
    RandomLabels (KL in bits, E_q errors, PAC-Bayes bounds) with ``summary()``.
    """
    import torch
    import torch.nn.functional as F

    from ._info_utils import make_generator, seed_from, to_tensor
    from .loop import fit, initial_network
    from .models import mlp, mlp_init, resolve_device
    from .tasks.digits import digits

    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or betas.size == 0 or not np.all(betas > 0):
        raise ValueError(f"betas must be a non-empty list of positive numbers (got {betas!r})")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must list at least one seed (got none)")
    if n_samples < 2 or n_test < 1 or n_samples + n_test > 1797:
        raise ValueError(f"n_samples >= 2 and n_test >= 1 must add up to at most the 1797 "
                         f"digits (got {n_samples} and {n_test})")
    dev = resolve_device(device) if isinstance(device, str) else device
    gen = make_generator(random_state)
    task = digits("coarse", n_samples=n_samples + n_test, random_state=seed_from(gen))
    x = to_tensor(task.x, device=dev)
    y_true = torch.as_tensor(task.labels)
    labellings = {"true": y_true,
                  "random": y_true[torch.randperm(len(y_true), generator=gen)]}
    tr, te = slice(0, n_samples), slice(n_samples, None)
    widths = (task.x.shape[1],) + tuple(hidden) + (2,)
    shape = (len(labellings), len(betas), len(seeds))
    out = {k: np.zeros(shape) for k in ("kl_bits", "expected_ce_bits", "train_error",
                                        "test_error", "pac_bayes_bound", "prior_scale")}
    net_err = np.zeros(shape[::2])
    for i, y in enumerate(labellings.values()):
        y = y.to(dev)
        for k, seed in enumerate(seeds):
            g = make_generator(seed)
            model = initial_network(mlp(widths, "relu"), seed, mlp_init("he", "relu")).to(dev)
            init = {name: v.detach().clone() for name, v in model.named_parameters()}
            fit(list(model.parameters()),
                lambda idx: F.cross_entropy(model(x[tr][idx]), y[tr][idx]), n_samples,
                epochs=train_epochs, batch_size=n_samples, generator=g, lr=0.01, device=dev,
                on_epoch=(lambda _e: progress(1)) if progress is not None else None)
            with torch.no_grad():
                net_err[i, k] = (model(x[tr]).argmax(1) != y[tr]).float().mean().item()
            for b, beta in enumerate(betas):
                res = fit_weight_posterior(
                    model, x[tr], y[tr], beta=beta, init_state=init, prior_scale=prior_scale,
                    learn_mean=True, lr_mean=lr_mean, init_sigma=init_sigma, epochs=epochs,
                    lr=lr, batch_size=n_samples, n_mc=n_mc, x_test=x[te], y_test=y[te],
                    fisher=False, random_state=seed_from(g), progress=progress, device=dev)
                bound = res.pac_bayes.bound if res.pac_bayes is not None else math.nan
                for key, values in out.items():
                    values[i, b, k] = bound if key == "pac_bayes_bound" else getattr(res, key)
    settings = dict(hidden=list(hidden), train_epochs=train_epochs, epochs=epochs, lr=lr,
                    lr_mean=lr_mean, prior_scale=prior_scale, init_sigma=init_sigma, n_mc=n_mc,
                    task=task.name, labels="parity")
    return RandomLabels(labels=tuple(labellings), betas=betas, seeds=seeds,
                        network_train_error=net_err, n_samples=int(n_samples),
                        n_test=int(n_test), n_params=int(sum(v.numel() for v in init.values())),
                        settings=settings, **out)


#: the betas of the true against random labels comparison (``ibsolver weights --betas``)
RANDOM_LABEL_BETAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


@dataclass(frozen=True)
class WeightsExperiment(Result):
    """What :func:`weights_experiment` (``ibsolver weights``) found, in bits.

    ``save``/``load`` (one .npz, no pickle, every part whole), ``summary()`` (what
    ``weights.json`` holds) and ``to_dataframe()`` (one row per parameter tensor of the
    network's posterior; ``random_labels.to_dataframe()`` is the other table) as every
    ``ibsolver`` result.

    Attributes
    ----------
    network : NetworkWeights
        The digits MLP and the information in its weights.
    random_labels : RandomLabels or None
        True against random labels on one network over beta (None where no beta was
        asked for).
    """

    network: NetworkWeights
    random_labels: RandomLabels | None = None

    def summary(self) -> dict:
        """:meth:`NetworkWeights.summary`, with the comparison of true and random labels
        (:meth:`RandomLabels.summary`) under "random_labels" where it ran: plain JSON
        values, bits, NaN as None."""
        out = self.network.summary()
        if self.random_labels is not None:
            out["random_labels"] = json_safe(self.random_labels.summary())
        return out

    def _columns(self) -> list:
        """One row per parameter tensor of the network's posterior."""
        return self.network._columns()


def weights_experiment(*, hidden: Sequence[int] = (64,), epochs: int = 30, beta: float = 1.0,
                       prior_scale: float | str = "optimize", prior_center: str = "init",
                       learn_mean: bool = False, posterior_epochs: int = 200, n_mc: int = 500,
                       delta: float = 0.05, betas: ArrayLike = RANDOM_LABEL_BETAS,
                       random_labels: Mapping[str, Any] | None = None,
                       random_state: RandomState = 0,
                       progress: Callable[[int], object] | None = None,
                       device: str | torch.device = "cpu") -> WeightsExperiment:
    """What ``ibsolver weights`` runs: the information in the weights of a digits MLP, then
    true against random labels on one network.

    First :func:`weights_of_digits_mlp` (``hidden``, ``epochs`` of SGD, then the
    posterior fitted at ``beta`` for ``posterior_epochs`` with the prior's ``prior_scale``
    and ``prior_center``, ``learn_mean``, ``n_mc`` weight samples and the PAC-Bayes
    confidence ``delta``); then, unless ``betas`` is empty,
    :func:`random_labels_experiment` at ``betas`` with the options ``random_labels``
    (``n_samples``, ``hidden``, ``seeds``, ``train_epochs``, ``epochs``, ...). Both draw
    their data and seeds from ``random_state``. ``progress`` is called with the number of
    steps done: ``epochs + posterior_epochs``, then ``2 x seeds x (train_epochs +
    len(betas) x epochs)`` of the random labels. Information in bits.

    Returns
    -------
    WeightsExperiment
    """
    from ._info_utils import make_generator, seed_from

    gen = make_generator(random_state)
    network = weights_of_digits_mlp(
        hidden=hidden, epochs=epochs, beta=beta, prior_center=prior_center,
        prior_scale=prior_scale, learn_mean=learn_mean, posterior_epochs=posterior_epochs,
        n_mc=n_mc, delta=delta, random_state=seed_from(gen), progress=progress, device=device)
    betas = [float(b) for b in np.atleast_1d(np.asarray(betas, dtype=np.float64))]
    rl = None
    if betas:
        rl = random_labels_experiment(betas, random_state=seed_from(gen), progress=progress,
                                      device=device, **dict(random_labels or {}))
    return WeightsExperiment(network=network, random_labels=rl)


def plot_random_labels(result: RandomLabels, *, ax: Axes | None = None) -> Axes:
    """KL per example (bits, log scale) against beta (log axis) for true (blue) and random
    (red) labels: the mean over seeds, their range shaded; on a twin axis the E_q training
    error (dashed) and the PAC-Bayes bound on the test error (dotted). Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    twin = ax.twinx()
    betas = result.betas
    for i, (lab, color) in enumerate(zip(result.labels, ("tab:blue", "tab:red"))):
        kl = result.kl_bits[i] / result.n_samples
        ax.loglog(betas, kl.mean(axis=1), "o-", color=color,
                  label=f"{lab} labels: KL(q||p) / N")
        ax.fill_between(betas, kl.min(axis=1), kl.max(axis=1), color=color, alpha=0.15, lw=0)
        twin.semilogx(betas, result.train_error[i].mean(axis=1), "--", color=color,
                      label=f"{lab}: training error of q")
        twin.semilogx(betas, result.pac_bayes_bound[i].mean(axis=1), ":", color=color,
                      label=f"{lab}: PAC-Bayes bound on its test error")
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xlabel("beta")
    ax.set_ylabel("information in the weights per example (bits)")
    twin.set_ylabel("0-1 error")
    twin.set_ylim(0, 1.02)
    lines, names = ax.get_legend_handles_labels()
    lines2, names2 = twin.get_legend_handles_labels()
    ax.legend(lines + lines2, names + names2, fontsize=6, loc="center left")
    return ax
