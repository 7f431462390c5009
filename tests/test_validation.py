"""Bad input gets a clear error naming the argument and the value; odd-but-valid input is converted."""
import numpy as np
import pytest

import ibsolver
from ibsolver.exceptions import BackendUnavailableError

GOOD = np.array([[0.3, 0.2], [0.1, 0.4]])


@pytest.mark.parametrize("p, exc, words", [
    (np.array([[0.5, -0.1], [0.3, 0.3]]), ValueError, "non-negative"),
    (np.array([[0.5, np.nan], [0.3, 0.2]]), ValueError, "finite"),
    (np.array([[0.5, np.inf], [0.3, 0.2]]), ValueError, "finite"),
    (np.array([0.5, 0.5]), ValueError, "2-D"),
    (np.ones((2, 2, 2)) / 8, ValueError, "2-D"),
    (np.zeros((0, 2)), ValueError, "at least one row"),
    (np.zeros((2, 2)), ValueError, "some non-zero entry"),
    (np.array([[0.3, 0.2], [0.1, 0.33]]), ValueError, "sum to 1 (got 0.93"),
    (np.array([["a", "b"], ["c", "d"]]), TypeError, "numeric"),
    (np.array([[0.5 + 0j, 0.5]]), TypeError, "real"),
])
def test_bad_joint_is_rejected_with_its_value(p, exc, words):
    with pytest.raises(exc, match="p_xy") as info:
        ibsolver.solve(p, 2.0)
    assert words in str(info.value)


def test_unnormalised_table_is_rescaled_on_request():
    res = ibsolver.solve(GOOD * 7, 3.0, normalize=True, random_state=0)
    ref = ibsolver.solve(GOOD, 3.0, random_state=0)
    np.testing.assert_allclose(res.i_ty, ref.i_ty, atol=1e-12)


def test_integer_and_noncontiguous_tables_are_converted():
    counts = np.array([[3, 2], [1, 4]])
    res = ibsolver.solve(counts, 3.0, normalize=True, random_state=0)
    nc = np.asfortranarray(GOOD)[:, ::1]
    wide = np.zeros((2, 4))
    wide[:, ::2] = GOOD
    res2 = ibsolver.solve(wide[:, ::2], 3.0, random_state=0)
    ref = ibsolver.solve(GOOD, 3.0, random_state=0)
    np.testing.assert_allclose(res.i_ty, ref.i_ty, atol=1e-12)
    np.testing.assert_allclose(res2.i_ty, ref.i_ty, atol=1e-12)
    np.testing.assert_allclose(ibsolver.solve(nc, 3.0, random_state=0).i_ty, ref.i_ty, atol=1e-12)


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"beta": -1.0}, ValueError, "beta must be >= 0.0 (got -1.0)"),
    ({"beta": float("nan")}, ValueError, "beta must be finite"),
    ({"beta": float("inf")}, ValueError, "beta must be finite"),
    ({"beta": "2"}, TypeError, "beta must be a real number"),
    ({"beta": 2.0, "n_clusters": 0}, ValueError, "n_clusters must be >= 1 (got 0)"),
    ({"beta": 2.0, "n_clusters": 2.5}, TypeError, "n_clusters must be an integer"),
    ({"beta": 2.0, "alpha": -0.5}, ValueError, "alpha must be >= 0.0"),
    ({"beta": 2.0, "max_iter": 0}, ValueError, "max_iter must be >= 1"),
    ({"beta": 2.0, "tol": -1.0}, ValueError, "tol must be >= 0.0"),
    ({"beta": 2.0, "n_threads": 0}, ValueError, "n_threads must be >= 1"),
    ({"beta": 2.0, "backend": "cuda"}, ValueError, "backend must be one of"),
    ({"beta": 2.0, "random_state": "seed"}, TypeError, "random_state"),
    ({"beta": 2.0, "init": np.ones((3, 2)) / 2}, ValueError, "init must have shape"),
    ({"beta": 2.0, "init": np.array([[0.9, 0.3], [0.5, 0.5]])}, ValueError, "init rows must sum to 1"),
])
def test_bad_options_are_rejected_with_their_value(kwargs, exc, words):
    with pytest.raises(exc) as info:
        ibsolver.solve(GOOD, **kwargs)
    assert words in str(info.value)


def test_missing_backend_raises_with_install_hint(monkeypatch):
    from ibsolver import backends

    monkeypatch.setitem(backends._errors, "numba", ImportError("No module named 'numba'"))
    monkeypatch.delitem(backends._loaded, "numba", raising=False)
    with pytest.raises(BackendUnavailableError, match="pip install"):
        ibsolver.solve(GOOD, 2.0, backend="numba")


def test_measures_reject_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        ibsolver.kl_divergence([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="same number of samples"):
        ibsolver.joint_from_samples([1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="counts must be non-negative"):
        ibsolver.joint_from_counts([[1, -1], [2, 3]])


# the sum of a table: tolerant within float32 rounding (relative 1e-6), exact beyond
def test_table_off_1_by_1e_7_is_renormalised_exactly(caplog):
    from ibsolver._validation import check_joint

    with caplog.at_level("DEBUG", logger="ibsolver._validation"):
        arr = check_joint(GOOD * (1 - 1e-7))
    np.testing.assert_allclose(arr.sum(), 1.0, rtol=0, atol=4e-16)
    np.testing.assert_allclose(arr, GOOD, rtol=1e-15, atol=0)
    assert "renormalised" in caplog.text
    res = ibsolver.solve(GOOD * (1 + 1e-7), 3.0, random_state=0)
    ref = ibsolver.solve(GOOD, 3.0, random_state=0)
    np.testing.assert_allclose(res.i_ty, ref.i_ty, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("scale, shown", [(1 - 1e-4, "got 0.9999)"), (1 + 2e-6, "got 1.000002)"),
                                          (1 - 1e-5, "got 0.99999)")])
def test_table_off_1_beyond_float32_rounding_is_an_error(scale, shown):
    with pytest.raises(ValueError, match="p_xy must sum to 1") as info:
        ibsolver.solve(GOOD * scale, 3.0)
    assert shown in str(info.value) and "pass normalize=True" in str(info.value)


def test_float32_table_is_accepted():
    p = np.random.default_rng(3).dirichlet(np.ones(40 * 7)).reshape(40, 7)
    p32 = p.astype(np.float32)
    assert abs(float(p32.astype(np.float64).sum()) - 1.0) > 1e-9  # off 1 in float64
    res = ibsolver.solve(p32, 3.0, random_state=0)
    ref = ibsolver.solve(p32.astype(np.float64) / p32.astype(np.float64).sum(), 3.0,
                         random_state=0)
    np.testing.assert_allclose(res.i_ty, ref.i_ty, rtol=1e-12, atol=1e-15)


def test_drop_empty_drops_zero_rows_and_columns_with_a_note(caplog):
    from ibsolver._validation import check_joint

    table = np.zeros((3, 3))
    table[[0, 2], :2] = GOOD
    with caplog.at_level("INFO", logger="ibsolver._validation"):
        arr = check_joint(table, drop_empty=True)
    np.testing.assert_array_equal(arr, GOOD)
    assert "all-zero rows (probability 0) at indices [1]" in caplog.text
    assert "all-zero columns (probability 0) at indices [2]" in caplog.text
    with pytest.raises(ValueError, match="all zeros"):
        check_joint(np.zeros((2, 2)), drop_empty=True)


def test_load_joint_reads_files_and_names_them(tmp_path):
    from ibsolver.io import load_joint

    np.save(tmp_path / "f32.npy", GOOD.astype(np.float32))
    np.testing.assert_allclose(load_joint(tmp_path / "f32.npy"), GOOD, rtol=1e-7)
    np.savetxt(tmp_path / "c.csv", [[3, 2, 0], [1, 4, 0]], delimiter=",", fmt="%d")
    np.testing.assert_allclose(load_joint(tmp_path / "c.csv"), GOOD, rtol=1e-15)
    np.savetxt(tmp_path / "off.csv", GOOD * 0.99, delimiter=",")
    with pytest.raises(ValueError, match=r"table in off.csv must sum to 1 \(got 0.99\); "
                                         r"pass normalize=True"):
        load_joint(tmp_path / "off.csv")
    np.testing.assert_allclose(load_joint(tmp_path / "off.csv", normalize=True), GOOD, rtol=1e-14)
    (tmp_path / "p.txt").write_text("0.5,0.5\n")
    with pytest.raises(ValueError, match=r"'.*p.txt' has an unknown format '.txt'"):
        load_joint(tmp_path / "p.txt")


def test_rows_and_columns_of_probability_zero_are_dropped_and_put_back(caplog):
    """x and y of probability 0 take no part in the IB: solve and ib_curve drop them (with a
    note) and give results in the user's shape: the same values as without them, an x of
    probability 0 encoded by p(t), a y of probability 0 with p(y|t) = 0."""
    padded = np.zeros((3, 3))
    padded[[0, 2], :2] = GOOD
    beta = 12.0
    with caplog.at_level("INFO", logger="ibsolver._validation"):
        res = ibsolver.solve(padded, beta, random_state=0)
    assert "all-zero rows (probability 0) at indices [1]" in caplog.text
    ref = ibsolver.solve(GOOD, beta, random_state=0)
    assert res.n_clusters == ref.n_clusters == 2
    np.testing.assert_allclose(res.lagrangian, ref.lagrangian, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.encoder[[0, 2]], ref.encoder, atol=1e-12)
    np.testing.assert_allclose(res.encoder[1], res.p_t, atol=0)
    np.testing.assert_allclose(res.p_y_given_t[:, :2], ref.p_y_given_t, atol=1e-12)
    np.testing.assert_array_equal(res.p_y_given_t[:, 2], 0.0)
    init = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    warm = ibsolver.solve(padded, beta, init=init)
    np.testing.assert_allclose(warm.lagrangian, ref.lagrangian, rtol=0, atol=1e-12)

    curve = ibsolver.ib_curve(padded, n_betas=10, return_encoders=True)
    compact = ibsolver.ib_curve(GOOD, n_betas=10, return_encoders=True)
    np.testing.assert_allclose(curve.i_ty, compact.i_ty, rtol=0, atol=1e-12)
    for q, q_ref in zip(curve.encoders, compact.encoders):
        np.testing.assert_allclose(q[[0, 2]], q_ref, atol=1e-12)
        np.testing.assert_allclose(q[1], GOOD.sum(axis=1) @ q_ref, atol=1e-12)  # p(t)


def test_a_torch_tensor_that_requires_grad_is_accepted():
    """(A regression: the zero-row check read the tensor with numpy before it was detached.)"""
    torch = pytest.importorskip("torch")
    table = torch.tensor(GOOD, requires_grad=True)
    ref = ibsolver.solve(GOOD, 12.0, random_state=0)
    np.testing.assert_allclose(ibsolver.solve(table, 12.0, random_state=0).lagrangian,
                               ref.lagrangian, rtol=0, atol=1e-12)
