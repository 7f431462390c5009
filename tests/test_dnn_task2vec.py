"""Task2Vec: distances between embeddings, identical tasks, the digits family, CLI."""
import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dnn.task2vec import (Task2VecExperiment, TaskEmbedding, build_probe,  # noqa: E402
                          digits_task_family, distance_matrix, task2vec_embed,
                          task2vec_experiment, task_distance)


@pytest.fixture(scope="module")
def probe():
    return build_probe(hidden=(16, 8), epochs=3, random_state=0)


@pytest.fixture(scope="module")
def family():
    return digits_task_family(n_samples=300, random_state=0)


def test_distance_properties():
    rng = np.random.default_rng(0)
    embs = [rng.uniform(0, 1, 12) for _ in range(5)]
    for metric in ("normalized_cosine", "cosine"):
        d = distance_matrix(embs, metric=metric)
        np.testing.assert_array_equal(np.diag(d), 0.0)
        np.testing.assert_allclose(d, d.T, rtol=0, atol=0)
        assert np.all(d >= 0) and np.all(d[~np.eye(5, dtype=bool)] > 0)
        # scale-free: an embedding and a multiple of it are the same task
        assert task_distance(embs[0], 7.5 * embs[0], metric=metric) == pytest.approx(0, abs=1e-12)
    # the normalised cosine distance of disjoint supports is 1 (orthogonal after a/(a+b))
    assert task_distance([1, 0, 0], [0, 1, 0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        task_distance([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="metric"):
        task_distance([1, 2], [1, 2], metric="euclid")


def test_identical_tasks_have_distance_near_zero(probe, family):
    x, y, c = family["parity"]
    a = task2vec_embed(x, y, probe=probe, n_classes=c, random_state=1)
    b = task2vec_embed(x, y, probe=probe, n_classes=c, random_state=2)  # other head init
    other = task2vec_embed(*family["fine"][:2], probe=probe, n_classes=10, random_state=1)
    assert isinstance(a, TaskEmbedding)
    np.testing.assert_allclose(a.vector.sum(), 1.0, rtol=1e-12)
    assert a.vector.shape == (16 + 8,)  # one entry per probe unit
    d_same, d_other = task_distance(a, b), task_distance(a, other)
    assert d_same < 0.02
    assert d_same < 0.2 * d_other
    # the probe is not modified by embedding
    a2 = task2vec_embed(x, y, probe=probe, n_classes=c, random_state=1)
    np.testing.assert_allclose(a2.vector, a.vector, rtol=1e-10)


def test_per_parameter_embedding(probe, family):
    x, y, c = family["high"]
    e = task2vec_embed(x, y, probe=probe, n_classes=c, reduce="none", n_fisher=100)
    n_par = sum(p.numel() for p in probe.parameters())
    assert e.raw.shape == (n_par,) and np.all(e.raw >= 0)
    np.testing.assert_allclose(e.raw.sum(), e.fisher_trace, rtol=1e-6)


def test_experiment_matrix(probe, family):
    fam = {k: family[k] for k in ("fine", "low5", "parity", "3_vs_rest")}
    result = task2vec_experiment(fam, probe=probe, random_state=0)
    names, embs, d = result.names, result.embeddings, result.distances
    assert names == tuple(fam) and d.shape == (4, 4) and len(embs) == 4
    np.testing.assert_array_equal(d, distance_matrix(embs))
    np.testing.assert_array_equal(np.diag(d), 0.0)
    np.testing.assert_array_equal(d, d.T)


def test_family_labels():
    fam = digits_task_family(n_samples=200, random_state=1)
    x, d, _ = fam["fine"]
    np.testing.assert_array_equal(fam["parity"][1], d % 2)
    np.testing.assert_array_equal(fam["3_vs_rest"][1], (d == 3).astype(int))
    assert fam["low5"][1].max() <= 4 and fam["high5"][1].max() <= 4
    assert len(fam["low5"][0]) + len(fam["high5"][0]) == len(x)


def test_cli_task2vec_end_to_end(tmp_path):
    from ibsolver.cli import main

    out = tmp_path / "t2v"
    rc = main(["task2vec", "--tasks", "fine,parity,high", "--n-samples", "200",
               "--probe-hidden", "8", "--probe-epochs", "1", "--quiet", "--out", str(out)])
    assert rc == 0
    with open(out / "task2vec_distances.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["task", "fine", "parity", "high"]
    d = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_array_equal(np.diag(d), 0.0)
    np.testing.assert_allclose(d, d.T)
    npz = np.load(out / "task2vec_embeddings.npz")
    assert npz["embeddings"].shape == (3, 8)
    meta = json.loads((out / "task2vec.json").read_text())
    assert set(meta["nearest"]) == {"fine", "parity", "high"}
    # task2vec.npz is the whole result, the same numbers as the other files
    result = Task2VecExperiment.load(out / "task2vec.npz")
    assert result.summary() == meta
    np.testing.assert_array_equal(npz["distances"], result.distances)
    np.testing.assert_array_equal(npz["embeddings"], [e.vector for e in result.embeddings])
    assert npz["names"].tolist() == list(result.names)
    np.testing.assert_allclose(d, result.distances, rtol=0, atol=5e-7)  # the CSV's 6 digits
    import matplotlib.image as mpimg
    assert mpimg.imread(out / "task2vec.png").ndim == 3
    assert main(["task2vec", "--tasks", "fine,nope", "--quiet", "--out", str(out)]) == 2


# --------------------------------------------------------------------------- devices
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


def _spy_fisher_devices(monkeypatch):
    """Record where every Fisher of task2vec_embed runs (the embedding does not say)."""
    import dnn.fisher as fisher

    real = fisher.fisher_diagonal
    seen = []

    def spy(model, x, *args, **kwargs):
        seen.append((next(model.parameters()).device, x.device, kwargs.get("device")))
        return real(model, x, *args, **kwargs)

    monkeypatch.setattr(fisher, "fisher_diagonal", spy)
    return seen


def test_explicit_cpu_device_is_the_default(probe, family, monkeypatch):
    x, y, c = family["mod3"]
    seen = _spy_fisher_devices(monkeypatch)
    base = task2vec_embed(x, y, probe=probe, n_classes=c, n_fisher=120, random_state=4)
    for device in ("cpu", torch.device("cpu")):
        e = task2vec_embed(x, y, probe=probe, n_classes=c, n_fisher=120, random_state=4,
                           device=device)
        np.testing.assert_array_equal(e.vector, base.vector)
        np.testing.assert_array_equal(e.raw, base.raw)
        assert (e.fisher_trace, e.head_accuracy) == (base.fisher_trace, base.head_accuracy)
    assert [(m.type, xd.type, str(d)) for m, xd, d in seen] == [("cpu", "cpu", "cpu")] * 3
    fam = {k: family[k] for k in ("parity", "low5", "7_vs_rest")}
    run = task2vec_experiment(fam, probe=probe, random_state=2)
    run_cpu = task2vec_experiment(fam, probe=probe, random_state=2, device="cpu")
    embs, d, embs_cpu, d_cpu = run.embeddings, run.distances, run_cpu.embeddings, run_cpu.distances
    np.testing.assert_array_equal(d_cpu, d)
    for a, b in zip(embs_cpu, embs):
        np.testing.assert_array_equal(a.vector, b.vector)


@needs_cuda
def test_cuda_embeddings_and_distances_match_cpu(family, monkeypatch):
    """Head initialisation and Fisher subset are drawn from CPU generators on every device,
    so the GPU embeds with the same head start and inputs: only float32 round-off differs.

    A random (not pre-trained) probe: its dead units have exactly zero Fisher, while a
    briefly pre-trained one has near-dead units with entries ~1e-9 whose ratio a / (a + b)
    in the normalised cosine distance is set by round-off (a 1e-6 relative perturbation of
    the inputs moved those distances by up to 0.07 on the CPU). With this probe the same
    perturbation (8 draws) moved the embeddings by <= 8e-4, the distances by <= 1.4e-3, the
    Fisher trace by <= 0.11 % and the head accuracy by <= 1 example; the tolerances below
    leave about 7x room (0.03 accuracy: 4 examples of the 141-image task; TF32 is off by
    default) and stay far below the differences between tasks (>= 0.05 in some embedding
    entry, >= 0.2 in distance).
    """
    probe = build_probe(hidden=(16, 8), pretrain=None, random_state=0)
    fam = {k: family[k] for k in ("fine", "low5", "parity", "3_vs_rest")}
    seen = _spy_fisher_devices(monkeypatch)
    run_gpu = task2vec_experiment(fam, probe=probe, random_state=0, device="cuda", n_fisher=250)
    gpu, d_gpu = run_gpu.embeddings, run_gpu.distances
    assert [(m.type, xd.type) for m, xd, _ in seen] == [("cuda", "cuda")] * len(fam)
    assert next(probe.parameters()).device.type == "cpu"   # the probe is left where it was
    run_cpu = task2vec_experiment(fam, probe=probe, random_state=0, device="cpu", n_fisher=250)
    cpu, d_cpu = run_cpu.embeddings, run_cpu.distances
    for g, c in zip(gpu, cpu):
        assert isinstance(g.vector, np.ndarray) and g.vector.dtype == np.float64
        np.testing.assert_allclose(g.vector.sum(), 1.0, rtol=1e-12)
        np.testing.assert_allclose(g.vector, c.vector, rtol=0, atol=5e-3, err_msg=g.name)
        np.testing.assert_allclose(g.fisher_trace, c.fisher_trace, rtol=1e-2)
        np.testing.assert_allclose(g.head_accuracy, c.head_accuracy, rtol=0, atol=0.03)
    np.testing.assert_array_equal(np.diag(d_gpu), 0.0)
    np.testing.assert_allclose(d_gpu, d_cpu, rtol=0, atol=1e-2)
    np.testing.assert_allclose(distance_matrix(gpu, metric="cosine"),
                               distance_matrix(cpu, metric="cosine"), rtol=0, atol=5e-3)


@needs_cuda
def test_cuda_probe_embeds_on_its_device(probe, family, monkeypatch):
    """Regression: a probe on the GPU used to fail with a device mismatch (inputs and head
    were built on the CPU). The default device is now the probe's."""
    import copy

    x, y, c = family["parity"]
    gpu_probe = copy.deepcopy(probe).to("cuda")
    seen = _spy_fisher_devices(monkeypatch)
    e = task2vec_embed(x, y, probe=gpu_probe, n_classes=c, random_state=1)
    assert [(m.type, xd.type) for m, xd, _ in seen] == [("cuda", "cuda")]
    cpu = task2vec_embed(x, y, probe=probe, n_classes=c, random_state=1)
    # round-off only (the pre-trained probe's near-dead units sit at ~1e-9: negligible here)
    np.testing.assert_allclose(e.vector, cpu.vector, rtol=0, atol=5e-3)
    np.testing.assert_allclose(e.fisher_trace, cpu.fisher_trace, rtol=1e-2)
    assert task_distance(e, cpu, metric="cosine") < 1e-3
