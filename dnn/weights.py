"""Information in the weights (Achille, Paolini & Soatto 2019) and PAC-Bayes bounds.

For a network trained on N examples D, the information in the weights at trade-off beta is
the KL term of the minimiser of

    C_beta(q) = E_{w~q}[ L_D(w) ] + beta * KL( q(w|D) || p(w) ),   L_D(w) = sum_n CE_n(w)

with q = N(mu, diag s^2) and a data-independent prior p = N(w0, l^2 I) centred at the
initialisation (or at 0). L_D is the cross-entropy *summed* over the data set, in nats, the
convention in which beta = 1 is the ELBO and in which random labels switch between being
memorised and being ignored near beta = 1 (memorising N labels of entropy H saves N*H nats
of loss and costs at least about N*H nats of KL). Training divides the objective by N:
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
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

LN2 = math.log(2.0)

#: the fixed grid of prior scales searched by prior_scale="optimize" (union bound over it)
PRIOR_SCALE_GRID = tuple(float(v) for v in np.geomspace(1e-4, 10.0, 61))


# ----------------------------------------------------------------------------- binary kl

def binary_kl(p, q) -> np.ndarray:
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

def gaussian_kl(mu_q, sigma_q, mu_p, sigma_p) -> float:
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


def fisher_kl_approximation(fisher_diag: dict, w_star: dict, w0: dict, *, beta: float,
                            prior_scale: float, n_samples: int):
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
class WeightsInformation:
    """A fitted Gaussian posterior q = N(mu, diag s^2) against the prior N(w0, l^2 I).

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
        return d


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


def fit_weight_posterior(model, x, y, *, beta: float = 1.0, prior_center="init",
                         init_state: dict | None = None, prior_scale="optimize",
                         learn_mean: bool = False, init_sigma: float = 1e-2, epochs: int = 100,
                         lr: float = 0.05, lr_mean: float = 1e-3, batch_size: int = 256,
                         n_mc: int = 500,
                         x_test=None, y_test=None, fisher: bool = True, delta: float = 0.05,
                         delta_mc: float = 0.01, random_state=0, progress=None,
                         device="cpu") -> WeightsInformation:
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

    groups = [{"params": list(log_s.values())}]
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


# ------------------------------------------------------------------ random labels

#: budgets of the random-label experiment per input kind (epochs, lr_mean, init_sigma)
_RANDOM_LABEL_BUDGET = {"one_hot": (1000, 0.05, 1.0), "digits": (500, 1e-2, 0.03)}


def weights_of_digits_mlp(*, hidden=(64,), epochs: int = 30, n_train: int = 1000,
                          random_state=0, progress=None, device="cpu", **posterior):
    """Train a ReLU MLP on ``n_train`` of scikit-learn's digits (plain SGD, batch 32, lr 0.05),
    then fit its weight posterior on them (:func:`fit_weight_posterior`, prior centred at the
    network's initialisation; ``posterior`` holds its options, ``posterior_epochs`` its
    epochs), with the other digits as the test set. Returns (Recording, WeightsInformation).
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
                    record_epochs=[epochs], seed=seed, progress=progress, device=device,
                    name=task.name)
    model = mlp((task.x.shape[1],) + tuple(hidden) + (task.n_classes,), "relu")
    init = initial_network(model, seed, mlp_init("he", "relu"))
    posterior = dict(posterior)
    res = fit_weight_posterior(
        rec.network(model), task.x[tr], task.labels[tr],
        init_state={k: v.detach() for k, v in init.named_parameters()}, epochs=posterior.pop("posterior_epochs", 100),
        x_test=task.x[te], y_test=task.labels[te], random_state=seed_from(gen),
        progress=progress, device=device, **posterior)
    return rec, res


def random_labels_experiment(betas=(0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 3.0), *,
                             inputs: str = "one_hot", n_samples: int = 100, n_classes: int = 2,
                             hidden=(128,), epochs: int | None = None, lr: float = 0.05,
                             lr_mean: float | None = None, batch_size: int = 50,
                             prior_scale="optimize", init_sigma: float | None = None,
                             n_mc: int = 100, random_state=0, progress=None,
                             device="cpu") -> list:
    """Train N(mu, diag s^2) with E_q[sum CE] + beta KL on *random* labels, over beta.

    inputs : "digits" -- ``n_samples`` digit images with random labels, an MLP with
        ``hidden`` layers; "one_hot" -- example n is the n-th one-hot vector and the model is
        linear (``hidden`` ignored): every example has its own weights, the idealised
        "lookup table" in which each label is coded independently.
    epochs, lr_mean, init_sigma : None takes the per-input defaults
        ``_RANDOM_LABEL_BUDGET[inputs]`` (one_hot: 1000, 0.05, 1.0; digits: 500, 0.01, 0.03).

    For every beta the same initialisation (also the prior's centre) and the same random
    labels are used; mu and s are both learned (mu from the initialisation).

    Why beta = 1: for labels Y^N drawn uniformly and independently of x, any posterior
    q(w | Y^N) has E[N log C - E_q sum CE] <= I(Y^N; W) <= E[KL(q || p)] (cross-entropy >=
    conditional entropy; the mutual information is the KL to the *mixture* of the
    posteriors, the smallest over priors). So E_q[sum CE] + beta KL >= N log C +
    (beta - 1) KL: above beta = 1 memorising never pays (in expectation over labelings).
    Below it, it pays when the code is efficient enough: for one independent Gaussian logit
    per example (the one_hot case) the best gain per nat of KL tends to 1, and memorising
    pays for every beta < 1 (numerically, gain 0.065 / 0.025 / 0.001 nats per example at
    beta = 0.8 / 0.9 / 0.99 and 0 from beta = 1 on); a network shares its weights between
    examples and spends more KL per label, which moves its transition to smaller beta.
    Returns one WeightsInformation per beta (``train_error``, ``kl_bits``,
    ``expected_ce_bits``).
    """
    import torch

    from ._info_utils import make_generator, seed_from
    from .loop import initial_network
    from .models import mlp, mlp_init
    from .tasks.digits import digits

    if inputs not in _RANDOM_LABEL_BUDGET:
        raise ValueError(f"inputs must be 'digits' or 'one_hot' (got {inputs!r})")
    d_epochs, d_lr_mean, d_sigma = _RANDOM_LABEL_BUDGET[inputs]
    epochs = d_epochs if epochs is None else epochs
    lr_mean = d_lr_mean if lr_mean is None else lr_mean
    init_sigma = d_sigma if init_sigma is None else init_sigma
    gen = make_generator(random_state)
    if inputs == "digits":
        x = digits("fine", n_samples=n_samples, random_state=seed_from(gen)).x
        widths = (x.shape[1],) + tuple(hidden) + (n_classes,)
    else:
        x = np.eye(int(n_samples), dtype=np.float32)
        widths = (int(n_samples), n_classes)
    y_rand = torch.randint(0, int(n_classes), (len(x),), generator=gen).numpy()
    init_seed = seed_from(gen)
    out = []
    for beta in betas:
        model = initial_network(mlp(widths, "relu"), init_seed, mlp_init("he", "relu"))
        init = {k: v.detach().clone() for k, v in model.named_parameters()}
        res = fit_weight_posterior(model, x, y_rand, beta=beta, init_state=init,
                                   prior_scale=prior_scale, learn_mean=True, lr_mean=lr_mean,
                                   init_sigma=init_sigma, epochs=epochs, lr=lr,
                                   batch_size=batch_size, n_mc=n_mc, fisher=False,
                                   random_state=seed_from(gen), progress=progress,
                                   device=device)
        out.append(res)
    return out


def plot_random_labels(results, *, ax=None):
    """Training error and KL per example (bits) against beta (log axis). Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    betas = [r.beta for r in results]
    ax.semilogx(betas, [r.train_error for r in results], "o-", color="tab:red",
                label="training error (E_q, 0-1)")
    ax.semilogx(betas, [r.expected_ce_bits for r in results], "s--", color="tab:orange",
                label="E_q cross-entropy (bits/example)")
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xlabel("beta")
    ax.set_ylabel("error / bits per example")
    twin = ax.twinx()
    twin.semilogx(betas, [r.kl_bits / r.n_samples for r in results], "d-", color="tab:blue",
                  label="KL(q||p) / N (bits/example)")
    twin.set_ylabel("information in the weights per example (bits)", color="tab:blue")
    lines = ax.get_legend_handles_labels()
    lines2 = twin.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="center right")
    return ax
