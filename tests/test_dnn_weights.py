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

from dnn.weights import (FIT_ERROR, PRIOR_SCALE_GRID, RandomLabels,  # noqa: E402
                         WeightsInformation, binary_kl, fisher_kl_approximation,
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


# ------------------------------------------------------------- true vs random labels

def test_true_vs_random_labels_on_the_same_network(tmp_path):
    """A tiny run (60 digits, one seed): at beta = 0.01 both labellings are fitted and the
    random labels take more information in the weights (1.5x to 1.9x over random states
    0-7); at beta = 3 the random labels are no longer memorised."""
    res = random_labels_experiment(betas=(0.01, 3.0), n_samples=60, n_test=50, hidden=(16,),
                                   seeds=(0,), train_epochs=100, epochs=100, n_mc=20,
                                   random_state=0)
    assert res.labels == ("true", "random") and res.seeds == (0,)
    assert res.n_samples == 60 and res.n_test == 50 and res.n_params == 64 * 16 + 16 + 16 * 2 + 2
    for a in (res.kl_bits, res.train_error, res.test_error, res.pac_bayes_bound,
              res.prior_scale):
        assert a.shape == (2, 2, 1) and np.all(np.isfinite(a))
    assert np.all(res.kl_bits >= 0) and np.all(res.train_error <= res.pac_bayes_bound)
    assert np.all(res.pac_bayes_bound <= 1.0)
    t, r = 0, 1
    assert res.train_error[t, 0, 0] < FIT_ERROR and res.train_error[r, 0, 0] < FIT_ERROR
    assert res.kl_bits[r, 0, 0] > 1.2 * res.kl_bits[t, 0, 0]
    assert res.train_error[r, 1, 0] > 0.3
    summ = res.summary()
    assert [c["beta"] for c in summ["both_fit"]] == [0.01]
    c = summ["both_fit"][0]
    np.testing.assert_allclose(c["ratio"], res.kl_bits[r, 0, 0] / res.kl_bits[t, 0, 0],
                               rtol=1e-12)
    assert c["random_more_in_every_seed"] and "random labels take" in summ["verdict"]
    json.dumps(summ)
    assert res.save(tmp_path / "rl.npz") is None
    back = RandomLabels.load(tmp_path / "rl.npz")
    for name in ("betas", "kl_bits", "train_error", "prior_scale", "network_train_error"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name), err_msg=name)
    assert (back.labels, back.seeds, back.n_samples) == (res.labels, res.seeds, res.n_samples)
    assert back.summary() == summ
    assert len(res._columns()) == res.kl_bits.size  # one per (labelling, beta, seed)
    pytest.importorskip("pandas")
    assert back.to_dataframe().to_dict("records") == res._columns()


def _synthetic_random_labels(kl_true, kl_random, err_true, err_random):
    """A RandomLabels of two betas and two seeds with the given (beta, seed) arrays."""
    kl = np.array([kl_true, kl_random], dtype=float)
    err = np.array([err_true, err_random], dtype=float)
    return RandomLabels(labels=("true", "random"), betas=np.array([0.01, 1.0]), seeds=(0, 1),
                        kl_bits=kl, expected_ce_bits=np.zeros_like(kl), train_error=err,
                        test_error=np.full_like(err, 0.5), pac_bayes_bound=np.ones_like(err),
                        prior_scale=np.full_like(kl, 0.1), network_train_error=np.zeros((2, 2)),
                        n_samples=100, n_test=10, n_params=50)


def test_random_labels_summary_states_the_comparison():
    res = _synthetic_random_labels(kl_true=[[100, 120], [10, 12]],
                                   kl_random=[[300, 110], [5, 6]],
                                   err_true=[[0.0, 0.02], [0.2, 0.3]],
                                   err_random=[[0.05, FIT_ERROR], [0.5, 0.5]])
    s = res.summary()
    assert [row["beta"] for row in s["per_beta"]] == [0.01, 1.0]
    first = s["per_beta"][0]
    assert first["true"]["fits"] and first["random"]["fits"]      # FIT_ERROR itself fits
    assert not s["per_beta"][1]["true"]["fits"]
    assert first["random"]["kl_bits"] == {"mean": 205.0, "std": 95.0, "min": 110.0,
                                          "max": 300.0}
    np.testing.assert_allclose(first["random"]["kl_bits_per_example"], 2.05, rtol=1e-12)
    assert s["both_fit"] == [{"beta": 0.01, "kl_true_bits": 110.0, "kl_random_bits": 205.0,
                              "ratio": 205.0 / 110.0, "random_more_in_every_seed": False}]
    assert s["verdict"] == ("where both fit, random labels take 1.9x at beta 0.01 the "
                            "information in the weights of true labels (more in every seed at "
                            "0 of 1 betas)")
    # a stricter fit: no beta where both fit
    strict = res.summary(fit_error=0.01)
    assert strict["both_fit"] == [] and strict["verdict"].startswith("no beta")


def test_random_labels_errors_name_the_argument():
    with pytest.raises(ValueError, match="betas"):
        random_labels_experiment(betas=(0.1, -1.0))
    with pytest.raises(ValueError, match="n_samples"):
        random_labels_experiment(n_samples=1700, n_test=500)
    with pytest.raises(ValueError, match="seeds"):
        random_labels_experiment(seeds=())


def test_cli_weights_end_to_end(tmp_path, capsys):
    from ibsolver.cli import main

    out = tmp_path / "weights"
    rc = main(["weights", "--epochs", "2", "--hidden", "8", "--posterior-epochs", "3",
               "--n-mc", "10", "--betas", "0.3,3", "--rl-samples", "10", "--rl-hidden", "4",
               "--rl-seeds", "2", "--rl-train-epochs", "3", "--rl-epochs", "5", "--quiet",
               "--out", str(out)])
    assert rc == 0
    meta = json.loads((out / "weights.json").read_text())
    assert meta["kl_bits"] > 0 and 0 <= meta["pac_bayes_bound"] <= 1
    assert "network_test_error" in meta
    rl = meta["random_labels"]
    assert [row["beta"] for row in rl["per_beta"]] == [0.3, 3.0]
    assert rl["seeds"] == [0, 1] and set(rl["per_beta"][0]) == {"beta", "true", "random"}
    with open(out / "random_labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 2
    assert {(r["labels"], float(r["beta"]), r["seed"]) for r in rows} == {
        (lab, b, s) for lab in ("true", "random") for b in (0.3, 3.0) for s in ("0", "1")}
    back = RandomLabels.load(out / "random_labels.npz")
    assert back.summary() == rl
    assert [r["kl_bits"] for r in back._columns()] == [float(r["kl_bits"]) for r in rows]
    printed = capsys.readouterr().out
    assert "true vs random labels" in printed and rl["verdict"] in printed
    # weights_sigma.npz is the fitted posterior, saved whole: its s per weight and numbers
    fitted = WeightsInformation.load(out / "weights_sigma.npz")
    assert list(fitted.sigma) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert fitted.sigma["fc1.weight"].shape == (8, 64) and np.all(fitted.sigma["fc1.weight"] > 0)
    assert list(fitted.sigma_fisher) == list(fitted.sigma)
    assert {k: v for k, v in meta.items() if k in fitted.summary()} == fitted.summary()
    import matplotlib.image as mpimg
    assert mpimg.imread(out / "random_labels.png").ndim == 3
    # weights.npz is the whole result: weights.json's summary, both parts whole
    from dnn.weights import WeightsExperiment

    result = WeightsExperiment.load(out / "weights.npz")
    assert result.summary() == meta
    assert result.random_labels.summary() == back.summary()
    np.testing.assert_array_equal(result.network.posterior.sigma["fc1.weight"],
                                  fitted.sigma["fc1.weight"])


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
    kw = dict(betas=(0.2, 3.0), n_samples=10, n_test=10, hidden=(8,), seeds=(0,),
              train_epochs=5, epochs=20, n_mc=5, random_state=0)
    gpu = random_labels_experiment(device="cuda", **kw)
    cpu = random_labels_experiment(device="cpu", **kw)
    assert gpu.kl_bits.shape == (2, 2, 1)
    assert np.all(np.isfinite(gpu.kl_bits)) and np.all(gpu.kl_bits >= 0)
    assert np.all(gpu.train_error >= 0) and np.all(gpu.train_error <= gpu.pac_bayes_bound)
    assert np.all(gpu.pac_bayes_bound <= 1)
    np.testing.assert_allclose(gpu.kl_bits, cpu.kl_bits, rtol=1e-3)
    # one sampled prediction on a tie moves the error by 1 / (n n_mc) = 0.02
    np.testing.assert_allclose(gpu.train_error, cpu.train_error, rtol=0, atol=0.05)
