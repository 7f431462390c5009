"""Information in the weights: Gaussian KL, binary-kl inversion, PAC-Bayes, Fisher
approximation against the fitted posterior, random labels, CLI."""
import csv
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from dnn.weights import (PRIOR_SCALE_GRID, binary_kl, fisher_kl_approximation,  # noqa: E402
                         fit_weight_posterior, gaussian_kl, invert_binary_kl, pac_bayes_bound,
                         random_labels_experiment)

LN2 = math.log(2)


# -------------------------------------------------------------------- binary kl

def test_binary_kl_known_values():
    np.testing.assert_allclose(binary_kl(0.5, 0.5), 0.0, atol=1e-15)
    np.testing.assert_allclose(binary_kl(0.0, 0.5), math.log(2), rtol=1e-14)
    np.testing.assert_allclose(binary_kl(0.1, 0.3),
                               0.1 * math.log(0.1 / 0.3) + 0.9 * math.log(0.9 / 0.7), rtol=1e-14)
    assert binary_kl(0.2, 1.0) == math.inf


@settings(max_examples=200, deadline=None)
@given(p=st.floats(0.0, 0.98), frac=st.floats(0.001, 0.999))
def test_invert_binary_kl_roundtrip(p, frac):
    """Compute c = kl(p || q) forward for q > p, invert: recover q."""
    q = p + frac * (1 - p)
    c = float(binary_kl(p, q))
    q_inv = invert_binary_kl(p, c)
    assert p <= q_inv <= 1
    np.testing.assert_allclose(q_inv, q, atol=1e-9 * max(1.0, 1 / max(1 - q, 1e-3)))
    np.testing.assert_allclose(float(binary_kl(p, q_inv)), c, rtol=1e-6, atol=1e-12)


def test_invert_binary_kl_edges():
    assert invert_binary_kl(0.3, 0.0) == 0.3
    assert invert_binary_kl(1.0, 0.5) == 1.0
    assert invert_binary_kl(0.2, math.inf) == 1.0
    np.testing.assert_allclose(invert_binary_kl(0.0, 0.1), 1 - math.exp(-0.1), rtol=1e-14)
    # pinned: kl(0.1 || 0.3) = 0.1 ln(1/3) + 0.9 ln(9/7) = 0.116322, inverted back to 0.3
    np.testing.assert_allclose(invert_binary_kl(0.1, 0.1163217565860046), 0.3, atol=1e-10)
    assert invert_binary_kl(0.05, 50.0) > 1 - 1e-12
    with pytest.raises(ValueError, match="p must"):
        invert_binary_kl(1.2, 0.1)
    with pytest.raises(ValueError, match="c must"):
        invert_binary_kl(0.2, -1.0)


def test_pac_bayes_bound_properties():
    b = pac_bayes_bound(0.05, kl_bits=500.0, n=10_000, delta=0.05)
    assert b.train_error < b.bound < 1.0
    rhs = (500 * LN2 + math.log(2 * math.sqrt(10_000) / 0.05)) / 10_000
    np.testing.assert_allclose(b.rhs, rhs, rtol=1e-14)
    np.testing.assert_allclose(float(binary_kl(0.05, b.bound)), rhs, rtol=1e-6)
    # monotone: more KL, fewer samples, a Monte-Carlo estimate, a prior grid -> looser
    assert pac_bayes_bound(0.05, 1000.0, 10_000).bound > b.bound
    assert pac_bayes_bound(0.05, 500.0, 2_000).bound > b.bound
    mc = pac_bayes_bound(0.05, 500.0, 10_000, n_mc=1000)
    assert mc.train_error_upper > 0.05 and mc.bound > b.bound
    assert pac_bayes_bound(0.05, 500.0, 10_000, n_priors=61).bound > b.bound
    with pytest.raises(ValueError, match="kl_bits"):
        pac_bayes_bound(0.1, -1.0, 100)
    with pytest.raises(ValueError, match="delta"):
        pac_bayes_bound(0.1, 1.0, 100, delta=0)


# ------------------------------------------------------------------ Gaussian KL

@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_kl_closed_form_vs_monte_carlo(seed):
    """Closed form against the Monte-Carlo mean of log q - log p over 200 000 samples of q:
    they agree within 5 standard errors of the estimate."""
    rng = np.random.default_rng(seed)
    d = 6
    mq, sq = rng.normal(size=d), rng.uniform(0.2, 1.5, d)
    mp, sp = rng.normal(size=d), rng.uniform(0.5, 2.0, d)
    w = mq + sq * rng.standard_normal((200_000, d))

    def logn(w, m, s):
        return (-0.5 * ((w - m) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)).sum(1)

    samples = (logn(w, mq, sq) - logn(w, mp, sp)) / LN2
    mc, se = samples.mean(), samples.std() / math.sqrt(len(samples))
    exact = gaussian_kl(mq, sq, mp, sp)
    assert abs(exact - mc) < 5 * se
    assert gaussian_kl(mq, sq, mq, sq) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="positive"):
        gaussian_kl(0, 0, 0, 1)


def test_fisher_kl_formula_is_the_kl_at_its_optimum():
    """For the quadratic model of the loss, s_opt = sqrt(beta / (N F + beta / l^2)) and the
    derived KL is exactly KL(N(w*, s_opt^2) || N(w0, l^2)); s_opt minimises the objective."""
    rng = np.random.default_rng(0)
    f = {"w": rng.uniform(0, 3, 20)}
    w_star, w0 = {"w": rng.normal(size=20)}, {"w": rng.normal(size=20) * 0.1}
    beta, l, n = 0.7, 0.5, 100
    (kl, kl_noise), kl_doc, sig = fisher_kl_approximation(f, w_star, w0, beta=beta,
                                                          prior_scale=l, n_samples=n)
    np.testing.assert_allclose(kl / LN2, gaussian_kl(w_star["w"], sig["w"], w0["w"], l),
                               rtol=1e-12)
    assert kl_noise < kl and kl_doc > 0

    def objective(s):
        return 0.5 * n * (f["w"] * s ** 2).sum() + beta * gaussian_kl(
            w_star["w"], s, w0["w"], l) * LN2

    base = objective(sig["w"])
    for eps in (0.98, 1.02):
        assert objective(sig["w"] * eps) > base


def test_fitted_posterior_matches_fisher_approximation():
    """Logistic regression at its maximum-likelihood weights is nearly quadratic: the KL
    reached by the reparametrised optimisation agrees with the Fisher approximation to 5%."""
    g = torch.Generator().manual_seed(0)
    n, d = 2000, 4
    x = torch.randn(n, d, generator=g)
    y = (torch.rand(n, generator=g) < torch.sigmoid(x @ torch.randn(d, generator=g) + 0.3)).long()
    model = nn.Linear(d, 1)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=200, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10)

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y.float())
        loss.backward()
        return loss

    opt.step(closure)
    res = fit_weight_posterior(model, x, y, beta=1.0, prior_center="zero", prior_scale=1.0,
                               epochs=300, batch_size=n, lr=0.05, n_mc=50, init_sigma=0.01,
                               random_state=0)
    np.testing.assert_allclose(res.kl_bits, res.kl_fisher_bits, rtol=0.05)
    for k in res.sigma:
        np.testing.assert_allclose(res.sigma[k], res.sigma_fisher[k], rtol=0.25)
    assert res.pac_bayes.train_error <= res.pac_bayes.bound < 1.0
    assert res.prior_scale == 1.0 and res.kl_bits > 0


def trained_mlp(widths, x, y, epochs):
    """A ReLU MLP trained by SGD through dnn.record_training, and its initial weights."""
    from dnn import record_training
    from dnn.loop import initial_network
    from dnn.models import mlp, mlp_init

    init_fn = mlp_init("he", "relu")
    base = mlp(widths, "relu")
    init = {k: v.detach().clone()
            for k, v in initial_network(base, 0, init_fn).named_parameters()}
    rec = record_training(base, (x, y), layers=["act1"], probe=(x[:1], y[:1]), epochs=epochs,
                          optimizer="sgd", lr=0.05, batch_size=32, init=init_fn,
                          estimators=(), n_records=2)
    return rec.network(base), init


def test_fit_posterior_on_trained_mlp_and_bound():
    from dnn.tasks.digits import digits

    t = digits("fine", n_samples=400, random_state=0)
    model, init = trained_mlp((64, 16, 10), t.x[:300], t.labels[:300], epochs=15)
    trained = {k: v.detach().clone() for k, v in model.named_parameters()}
    res = fit_weight_posterior(model, t.x[:300], t.labels[:300], init_state=init,
                               epochs=20, n_mc=50, x_test=t.x[300:], y_test=t.labels[300:])
    assert res.prior_scale in PRIOR_SCALE_GRID
    assert res.kl_bits > 0 and res.expected_ce_bits > 0
    pb = res.pac_bayes
    assert pb.train_error <= pb.train_error_upper <= pb.bound <= 1.0
    assert pb.n == 300 and pb.n_mc == 50
    assert 0 <= res.test_error <= 1 and 0 <= res.test_error_mean <= 1
    assert res.kl_fisher_bits is not None and res.kl_fisher_noise_bits <= res.kl_fisher_bits
    assert set(res.summary()) >= {"kl_bits", "pac_bayes_bound", "kl_fisher_bits"}
    # the model is left as it was
    for k, v in model.named_parameters():
        assert torch.equal(v.detach(), trained[k])
    with pytest.raises(ValueError, match="init_state"):
        fit_weight_posterior(model, t.x, t.labels)
    with pytest.raises(ValueError, match="beta"):
        fit_weight_posterior(model, t.x, t.labels, beta=0, prior_center="zero")
    with pytest.raises(ValueError, match="prior_scale"):
        fit_weight_posterior(model, t.x, t.labels, prior_scale="auto", prior_center="zero")


def test_random_labels_memorised_below_and_ignored_above_beta_one():
    res = random_labels_experiment(betas=(0.2, 3.0), inputs="one_hot", n_samples=30,
                                   epochs=300, n_mc=20, random_state=0)
    low, high = res
    assert low.train_error < 0.2 and high.train_error > 0.3
    assert low.kl_bits / low.n_samples > 0.5 > high.kl_bits / high.n_samples


def test_cli_weights_end_to_end(tmp_path):
    from ibsolver.cli import main

    out = tmp_path / "weights"
    rc = main(["weights", "--epochs", "2", "--hidden", "8", "--posterior-epochs", "3",
               "--n-mc", "10", "--betas", "0.3,3", "--rl-samples", "10", "--rl-epochs", "5",
               "--quiet", "--out", str(out)])
    assert rc == 0
    meta = json.loads((out / "weights.json").read_text())
    assert meta["kl_bits"] > 0 and 0 <= meta["pac_bayes_bound"] <= 1
    assert "network_test_error" in meta and len(meta["random_labels"]) == 2
    with open(out / "random_labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["beta"]) for r in rows] == [0.3, 3.0]
    sig = np.load(out / "weights_sigma.npz")
    assert "sigma_fc1_weight" in sig.files and np.all(sig["sigma_fc1_weight"] > 0)
    import matplotlib.image as mpimg
    assert mpimg.imread(out / "random_labels.png").ndim == 3


# --------------------------------------------------------------------------- CUDA
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


def _check_cuda_fit(model, x, y, x_test, y_test, **kw):
    """Fit on the GPU and on the CPU; the GPU fit has finite KL >= 0, a bound in
    [train error, 1] and the CPU's numbers. The weight noise and minibatch order come from
    one CPU generator on every device, so both fits see the same draws and differ by
    float32 round-off only. Returns the GPU fit."""
    gpu = fit_weight_posterior(model, x, y, x_test=x_test, y_test=y_test, device="cuda", **kw)
    assert next(model.parameters()).device.type == "cpu"   # the model is left where it was
    assert math.isfinite(gpu.kl_bits) and gpu.kl_bits >= 0
    assert math.isfinite(gpu.expected_ce_bits) and gpu.expected_ce_bits > 0
    assert np.all(np.isfinite(gpu.history["kl_bits"]))
    pb = gpu.pac_bayes
    assert 0 <= pb.train_error <= pb.train_error_upper <= pb.bound <= 1.0
    assert 0 <= gpu.test_error <= 1 and 0 <= gpu.test_error_mean <= 1
    assert math.isfinite(gpu.kl_fisher_bits) and gpu.kl_fisher_bits >= 0
    for k, s in gpu.sigma.items():
        assert isinstance(s, np.ndarray) and np.all(s > 0), k
    cpu = fit_weight_posterior(model, x, y, x_test=x_test, y_test=y_test, device="cpu", **kw)
    assert gpu.prior_scale == cpu.prior_scale
    np.testing.assert_allclose(gpu.kl_bits, cpu.kl_bits, rtol=1e-3)
    np.testing.assert_allclose(gpu.expected_ce_bits, cpu.expected_ce_bits, rtol=1e-3)
    np.testing.assert_allclose(gpu.kl_fisher_bits, cpu.kl_fisher_bits, rtol=1e-3)
    # one sampled prediction on a tie moves a 0-1 error by 1 / (n n_mc)
    np.testing.assert_allclose(gpu.train_error, cpu.train_error, rtol=0, atol=0.01)
    np.testing.assert_allclose(gpu.test_error, cpu.test_error, rtol=0, atol=0.01)
    np.testing.assert_allclose(pb.bound, cpu.pac_bayes.bound, rtol=0, atol=0.01)
    return gpu


@needs_cuda
def test_cuda_fit_posterior_logistic():
    """Bernoulli logistic regression at its fitted weights, fixed prior N(0, 1): about 100
    bits in the weights for 1000 examples, so the bound is far from vacuous (about 0.32)."""
    g = torch.Generator().manual_seed(0)
    n, d = 1000, 4
    x = torch.randn(2 * n, d, generator=g)
    y = (torch.rand(2 * n, generator=g) < torch.sigmoid(3 * x @ torch.randn(d, generator=g)))
    y = y.long()
    model = nn.Linear(d, 1)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x[:n]).squeeze(1),
                                                              y[:n].float())
        loss.backward()
        return loss

    opt.step(closure)
    res = _check_cuda_fit(model, x[:n], y[:n], x[n:], y[n:], prior_center="zero",
                          prior_scale=1.0, epochs=30, batch_size=250, lr=0.05, n_mc=100,
                          random_state=0)
    assert res.pac_bayes.bound < 0.5


@needs_cuda
def test_cuda_fit_posterior_mlp_init_prior():
    """A small MLP on digits, prior centred at the initialisation with the scale optimised
    and the mean learned (the random-label set-up); 150 examples, so the bound is near 1."""
    from dnn.tasks.digits import digits

    t = digits("fine", n_samples=200, random_state=0)
    model, init = trained_mlp((64, 8, 10), t.x[:150], t.labels[:150], epochs=5)
    _check_cuda_fit(model, t.x[:150], t.labels[:150], t.x[150:], t.labels[150:],
                    init_state=init, prior_scale="optimize", learn_mean=True, epochs=5,
                    batch_size=50, n_mc=20, random_state=0)


@needs_cuda
def test_cuda_random_labels_tiny():
    kw = dict(betas=(0.2, 3.0), inputs="one_hot", n_samples=10, epochs=20, n_mc=5,
              random_state=0)
    gpu = random_labels_experiment(device="cuda", **kw)
    cpu = random_labels_experiment(device="cpu", **kw)
    assert len(gpu) == 2
    for g, c in zip(gpu, cpu):
        assert math.isfinite(g.kl_bits) and g.kl_bits >= 0 and 0 <= g.train_error <= 1
        assert g.pac_bayes.train_error <= g.pac_bayes.bound <= 1.0
        np.testing.assert_allclose(g.kl_bits, c.kl_bits, rtol=1e-3)
        # one sampled prediction on a tie moves the error by 1 / (n n_mc) = 0.02
        np.testing.assert_allclose(g.train_error, c.train_error, rtol=0, atol=0.05)
