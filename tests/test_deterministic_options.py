"""Deterministic rules (H(Y|X) = 0) keep every option of ib_curve: encoders in the user's
rows, progress, n_betas, max_iter, interruption and resumption, the backend that ran, and
the real first instability and onset."""
import warnings

import numpy as np
import pytest

import ibsolver
from ibsolver import deterministic
from ibsolver.exceptions import ConvergenceWarning

#: Y = f(X) with f = (0, 0, 1, 2, 2): rows 0-1 and 3-4 are one class each
P = np.array([[0.1, 0, 0], [0.2, 0, 0], [0, 0.3, 0], [0, 0, 0.15], [0, 0, 0.25]])
H_Y = ibsolver.entropy(P.sum(axis=0))


def test_encoders_come_back_in_the_users_rows_and_give_the_points():
    curve = ibsolver.ib_curve(P, return_encoders=True, n_betas=6)
    assert curve.deterministic and len(curve.encoders) == curve.beta.size == 6
    for q, i_xt, i_ty in zip(curve.encoders, curve.i_xt, curve.i_ty):
        assert q.shape[0] == P.shape[0]
        np.testing.assert_array_equal(q[0], q[1])  # one class of x, one row of the encoder
        info = ibsolver.encoder_information(P, q)
        np.testing.assert_allclose([info["i_xt"], info["i_ty"]], [i_xt, i_ty], atol=1e-9)
    # the branch's own results too: the user's rows, not the reduced problem's
    for q, r in zip(curve.encoders, curve.branches["squared"].results, strict=True):
        np.testing.assert_array_equal(r.encoder, q)


def test_instability_and_onset_are_the_real_ones():
    """s2 = s* = 1 when Y = f(X): 1/s2^2 and 1/s* are computed, and the Lagrangian's
    optimum jumps at beta = 1 from one cluster to T = f(X) (I = H(Y) on both axes)."""
    curve = ibsolver.ib_curve(P, n_betas=4)
    np.testing.assert_allclose([curve.first_instability, curve.onset_beta_s_star], 1.0,
                               rtol=1e-9)
    assert curve.onset_beta == 1.0 and curve.onset_kind == "jump"
    (jump,) = curve.transitions
    assert jump.located and (jump.n_clusters_before, jump.n_clusters_after) == (1, 3)
    np.testing.assert_allclose([jump.i_xt_after, jump.i_ty_after], H_Y, rtol=1e-12)
    assert "optimum leaves zero at beta_0 = 1 (jump)" in str(curve)


def test_backend_is_recorded_as_what_ran(capsys):
    curve = ibsolver.ib_curve(P, n_betas=3, progress=True)
    assert {r.backend for r in curve.branches["squared"].results} == {"numpy"}
    assert "IB curve" in capsys.readouterr().err  # the progress bar
    other = [b for b in ibsolver.available_backends() if b != "numpy"]
    if not other:
        pytest.skip("only the numpy backend is built")
    with pytest.warns(UserWarning, match=f"squared IB .*, not the '{other[0]}' backend"):
        ibsolver.ib_curve(P, n_betas=3, backend=other[0])


def test_n_betas_and_max_iter_are_honoured():
    assert ibsolver.ib_curve(P, n_betas=7).beta.size == 7
    with pytest.warns(ConvergenceWarning, match="3 of 3 points stopped at max_iter=1"):
        curve = ibsolver.ib_curve(P, n_betas=3, max_iter=1)
    assert not curve.converged.any()


def test_interrupted_and_resumed(monkeypatch):
    full = ibsolver.ib_curve(P, n_betas=8)
    solve, calls = deterministic.solve_squared_ib, []

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return solve(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(deterministic, "solve_squared_ib", interrupting)
        with pytest.warns(RuntimeWarning, match="interrupted"):
            part = ibsolver.ib_curve(P, n_betas=8, interruptible=True)
    assert not part.complete and 0 < part.beta.size < 8
    assert part.untraced == ((part.beta[-1], full.beta[-1]),)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = ibsolver.ib_curve(P, n_betas=8, resume=part)
    assert resumed.complete
    np.testing.assert_array_equal(resumed.beta, full.beta)
    # each point an optimum of the squared Lagrangian, whatever random start found it
    np.testing.assert_allclose(resumed.i_xt, full.i_xt, atol=1e-6)
    np.testing.assert_allclose(resumed.i_ty, full.i_ty, atol=1e-6)
