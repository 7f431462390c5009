"""Interrupted curves: they say what they lack (text, JSON, figure), report no onset they
did not locate, save and load whole (no pickle), and resume to the uninterrupted curve."""
import io
import json
import warnings

import numpy as np
import pytest
from conftest import birth_problem, dsbs

import ibsolver
from ibsolver import curve as curve_module
from ibsolver.results import IBCurve


class Interrupt:
    """Make ib_curve's tracer raise KeyboardInterrupt (what Ctrl-C and the CLI's SIGTERM
    handler raise) at its ``at``-th solve, counting only once ``after`` (a function of
    ibsolver.curve) has been entered, if given."""

    def __init__(self, monkeypatch, at, after=None):
        self.at, self.count, self.armed = at, 0, after is None
        solve = curve_module._Tracer.solve

        def counting(tracer, *args, **kwargs):
            self.count += self.armed
            if self.armed and self.count == self.at:
                raise KeyboardInterrupt
            return solve(tracer, *args, **kwargs)

        monkeypatch.setattr(curve_module._Tracer, "solve", counting)
        if after is not None:
            phase = getattr(curve_module, after)

            def arm(*args, **kwargs):
                self.armed = True
                return phase(*args, **kwargs)

            monkeypatch.setattr(curve_module, after, arm)


def interrupted(p_xy, monkeypatch, at, after=None, **kw):
    with monkeypatch.context() as m:
        Interrupt(m, at, after)
        with pytest.warns(RuntimeWarning, match="interrupted"):
            return ibsolver.ib_curve(p_xy, interruptible=True, **kw)


def reloaded(curve) -> IBCurve:
    buf = io.BytesIO()
    curve.save(buf)
    buf.seek(0)
    return IBCurve.load(buf)


@pytest.fixture(scope="module")
def full_birth():
    return ibsolver.ib_curve(birth_problem(), return_encoders=True)


def assert_same_curve(a: IBCurve, b: IBCurve):
    """Every field of two curves equal (arrays exactly, transitions through summary)."""
    for name in ("beta", "i_xt", "i_ty", "h_t", "lagrangian", "n_clusters", "n_iter",
                 "converged", "branch", "envelope_i_xt", "envelope_i_ty"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("i_xy", "h_y", "first_instability", "onset_beta", "onset_beta_s_star",
                 "deterministic", "complete", "accuracy", "capped", "max_clusters", "alpha",
                 "onset_bracket", "table_digest", "untraced"):
        assert getattr(a, name) == getattr(b, name) or (
            np.isnan(getattr(a, name)) and np.isnan(getattr(b, name))), name
    assert a.settings.keys() == b.settings.keys()
    for key in a.settings:
        np.testing.assert_array_equal(a.settings[key], b.settings[key], err_msg=key)
    for name in ("all_transitions", "transitions"):  # (as JSON text: NaN equals NaN there)
        assert json.dumps([t.summary() for t in getattr(a, name)]) == \
            json.dumps([t.summary() for t in getattr(b, name)]), name
    assert a.branches.keys() == b.branches.keys()
    for name in a.branches:
        for r, s in zip(a.branches[name].results, b.branches[name].results, strict=True):
            for f in ("p_t", "p_y_given_t", "lagrangian_history", "encoder"):
                np.testing.assert_array_equal(getattr(r, f), getattr(s, f), err_msg=f)
            for f in ("beta", "i_xt", "i_ty", "h_t", "lagrangian", "n_iter", "converged",
                      "residual", "backend"):
                assert getattr(r, f) == getattr(s, f), f
            assert r.alpha == s.alpha or (np.isnan(r.alpha) and np.isnan(s.alpha))
    assert (a.encoders is None) == (b.encoders is None)
    for q, w in zip(a.encoders or (), b.encoders or (), strict=True):
        np.testing.assert_array_equal(q, w)


# --- saving and loading ------------------------------------------------------------------

def test_save_and_load_give_back_every_field(full_birth, tmp_path):
    full_birth.save(tmp_path / "c.npz")
    back = IBCurve.load(tmp_path / "c.npz")
    assert_same_curve(full_birth, back)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as data:  # nothing needs pickle
        assert data["forward_p_t"].dtype == np.float64


def test_generalised_and_capped_curves_round_trip():
    p = birth_problem()
    with pytest.warns(ibsolver.ConvergenceWarning, match="max_points=16"):
        curve = ibsolver.ib_curve(p, alpha=0.0, n_betas=8, max_points=16)
    assert np.isnan(curve.all_transitions[0].lagrangian)  # (kind "count": no Lagrangian)
    assert_same_curve(curve, reloaded(curve))
    with pytest.warns(ibsolver.ConvergenceWarning, match="max_clusters=2"):
        curve = ibsolver.ib_curve(p, max_clusters=2, n_betas=8, max_points=16)
    assert curve.capped
    assert_same_curve(curve, reloaded(curve))


def test_deterministic_curve_round_trips_with_its_encoders():
    p = np.array([[0.2, 0.0], [0.3, 0.0], [0.0, 0.5]])  # Y = f(X)
    curve = ibsolver.ib_curve(p, betas=[0.5, 1.0, 1.5])
    assert_same_curve(curve, reloaded(curve))


def test_load_names_a_file_it_cannot_read(tmp_path):
    np.savez(tmp_path / "other.npz", beta=np.arange(3.0))
    with pytest.raises(ValueError, match="other.npz.*not written by IBCurve.save"):
        IBCurve.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz.*not a readable .npz"):
        IBCurve.load(tmp_path / "junk.npz")


# --- what a partial curve says -----------------------------------------------------------

def test_a_curve_cut_in_its_reverse_pass_says_what_it_lacks(monkeypatch):
    part = interrupted(birth_problem(), monkeypatch, at=45)
    assert not part.complete and set(part.branches) == {"reverse"}
    grid = part.settings["grid"]
    (gap,) = part.untraced
    assert gap == (grid[0], part.beta.min())  # from the range's start to the lowest traced
    # the lowest traced point is not trivial: the onset is below it, not at it
    assert part.i_xt[0] > 1e-3
    assert np.isnan(part.onset_beta) and part.onset_kind == "unknown"
    text = str(part)
    assert "PARTIAL" in text and f"not traced: beta {grid[0]:.6g} to {part.beta.min():.6g}" \
        in text and "beta_0" not in text
    saved = json.loads(json.dumps(part.summary()))
    assert saved["complete"] is False and saved["untraced"] == [list(gap)]
    assert saved["onset_kind"] == "unknown"
    # nothing is claimed located that an interrupted run did not locate
    assert part.all_transitions and not any(t.located for t in part.all_transitions)


def test_a_split_located_before_the_cut_shows_no_jump(monkeypatch):
    """Cut in the forward pass after the DSBS split (beta 1.5625) was located there: the
    split is continuous, so its values after equal those before (it held its bracket's
    end, I(X;T) 0 -> 0.05, and read as a jump), while the transitions found later are
    known to their brackets only."""
    part = interrupted(dsbs(0.1), monkeypatch, at=90)
    assert not part.complete and "forward" in part.branches
    (split,) = [t for t in part.all_transitions if t.located]
    assert split.kind == "split" and split.beta == pytest.approx(1.5625, rel=1e-6)
    assert (split.i_xt_after, split.i_ty_after) == (split.i_xt_before, split.i_ty_before)
    assert split.i_xt_before < 1e-6


def test_an_onset_known_to_a_bracket_over_the_first_instability_says_its_kind_is_a_guess(
        monkeypatch):
    """Cut before the forward pass reaches the DSBS split: the onset is known from the
    reverse branch to a bracket around 1/s2^2 = 1.5625, where the reverse branch's guess
    reads "birth" for what is a split; the text says the kind is a guess."""
    part = interrupted(dsbs(0.1), monkeypatch, at=61)
    lo, hi = part.onset_bracket
    assert lo < part.first_instability < hi
    assert f"between beta = {lo:.6g} and {hi:.6g} (birth, a guess from the bracket's ends)" \
        in str(part)


def test_the_figure_of_a_partial_curve_marks_the_untraced_part(monkeypatch):
    pytest.importorskip("matplotlib")
    from ibsolver.plotting import plot_curve, plot_summary

    part = interrupted(birth_problem(), monkeypatch, at=45)
    fig = plot_summary(part, title="t")
    assert fig.get_suptitle() == "t: PARTIAL curve (interrupted; dashed: betas not traced)"
    ax = plot_curve(part)
    (gap,) = [line for line in ax.lines if line.get_label() == "not traced (interrupted)"]
    x = np.asarray(gap.get_xdata(), dtype=float)
    # from the origin to the lowest traced point, on the envelope
    np.testing.assert_allclose([np.nanmin(x), np.nanmax(x)], [0.0, part.i_xt[0]], atol=1e-12)
    assert gap.get_linestyle() == "--"


def test_an_onset_below_the_lowest_beta_asked_is_not_reported():
    curve = ibsolver.ib_curve(birth_problem(), betas=[5.0, 10.0, 20.0])
    assert curve.complete and curve.i_xt[0] > 0.1  # non-trivial already at beta = 5
    assert np.isnan(curve.onset_beta)
    assert "unknown beta below beta = 5 (already non-trivial there)" in str(curve)


# --- resuming ----------------------------------------------------------------------------

@pytest.mark.parametrize("at, after", [(45, None), (90, None)], ids=["reverse", "forward"])
def test_resuming_a_cut_pass_gives_the_uninterrupted_curve_exactly(full_birth, monkeypatch,
                                                                    request, at, after):
    part = interrupted(birth_problem(), monkeypatch, at, after, return_encoders=True)
    cut = part.branches.get(request.node.callspec.id, None)
    assert cut is not None and len(cut.results) < part.settings["grid"].size  # cut in that pass
    resumed = ibsolver.ib_curve(birth_problem(), return_encoders=True, resume=reloaded(part))
    assert_same_curve(full_birth, resumed)


def test_resuming_a_cut_refinement_gives_the_curve_to_its_accuracy(full_birth, monkeypatch):
    part = interrupted(birth_problem(), monkeypatch, at=15, after="_refine")
    assert part.untraced == () and len(part.beta) < len(full_birth.beta)
    resumed = ibsolver.ib_curve(birth_problem(), resume=reloaded(part))
    assert resumed.complete
    x = np.linspace(0.0, full_birth.envelope_i_xt[-1], 4001)
    tol = max(full_birth.accuracy, resumed.accuracy)
    np.testing.assert_allclose(resumed.bound(x), full_birth.bound(x), rtol=0, atol=tol)
    assert [t.kind for t in resumed.transitions] == [t.kind for t in full_birth.transitions]
    np.testing.assert_allclose([t.beta for t in resumed.transitions],
                               [t.beta for t in full_birth.transitions], rtol=1e-6)
    assert resumed.onset_beta == pytest.approx(full_birth.onset_beta, rel=1e-6)


def test_resume_refuses_another_table_or_other_options(monkeypatch):
    part = interrupted(birth_problem(), monkeypatch, at=45)
    with pytest.raises(ValueError, match="another table"):
        ibsolver.ib_curve(dsbs(0.1), resume=part)
    with pytest.raises(ValueError, match=r"grid=\[60 betas .*grid=\[30 betas"):
        ibsolver.ib_curve(birth_problem(), n_betas=30, resume=part)
    with pytest.raises(ValueError, match="curve_tol=1e-05, this call asks for curve_tol=0.001"):
        ibsolver.ib_curve(birth_problem(), curve_tol=1e-3, resume=part)
    with pytest.raises(TypeError, match="resume must be an IBCurve"):
        ibsolver.ib_curve(birth_problem(), resume="curve.npz")


def test_a_complete_curve_resumes_to_itself(full_birth):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ibsolver.ib_curve(birth_problem(), return_encoders=True,
                                 resume=full_birth) is full_birth
