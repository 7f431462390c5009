"""The 12-bit icosahedral task (pure numpy: no torch needed)."""
import hashlib
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import ibsolver
from dnn.tasks.tishby12 import (RULE_THRESHOLD, RULE_WEIGHTS, VERTICES, all_patterns,
                                invariants, load_var_u, rule_margin, rule_score, tishby12,
                                vertex_distances)

#: sha256 of var_u.mat's y (uint8, 4096 bytes): the canonical labels, pinned
VAR_U_Y_SHA256 = "77732f16f85e91b49d3997196b56163b3bd362d8cf631468a8de3f986e88359f"
H_Y = 0.999157  # bits, I(X;Y) = H(Y) for the deterministic rule


def _var_u_path():
    here = Path(__file__).resolve().parent.parent
    for cand in (os.environ.get("IBSOLVER_VAR_U"), here / "shared" / "data" / "var_u.mat",
                 Path("/work/shared/data/var_u.mat")):
        if cand and Path(cand).exists():
            return Path(cand)
    return None


@pytest.fixture(scope="module")
def task():
    return tishby12()


def test_labels_match_pinned_hash(task):
    y = task.labels.astype(np.uint8)
    assert hashlib.sha256(y.tobytes()).hexdigest() == VAR_U_Y_SHA256
    assert int(y.sum()) == 2118


def test_matches_var_u_file_exactly(task):
    path = _var_u_path()
    if path is None:
        pytest.skip("var_u.mat not found (set IBSOLVER_VAR_U)")
    ref = load_var_u(path)
    np.testing.assert_array_equal(task.x, ref.x)
    np.testing.assert_array_equal(task.labels, ref.labels)
    np.testing.assert_array_equal(task.p_y_given_x, ref.p_y_given_x)
    np.testing.assert_array_equal(task.p_x, ref.p_x)
    assert ref.n_classes == 2 and ref.n == 4096


def test_information_of_the_deterministic_rule(task):
    p_xy = task.p_xy
    np.testing.assert_allclose(p_xy.sum(), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(task.p_x, np.full(4096, 1 / 4096), rtol=0, atol=0)
    np.testing.assert_allclose(p_xy.sum(axis=0)[1], 0.51709, rtol=0, atol=5e-6)
    h_y = ibsolver.entropy(p_xy.sum(axis=0))
    i_xy = ibsolver.mutual_information(p_xy)
    np.testing.assert_allclose(i_xy, H_Y, rtol=0, atol=1e-6)
    np.testing.assert_allclose(h_y, H_Y, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ibsolver.conditional_entropy(p_xy), 0.0, rtol=0, atol=1e-12)


def test_patterns_are_lexicographic():
    f = all_patterns()
    assert f.shape == (4096, 12) and f.dtype == np.uint8
    idx = f.astype(np.int64) @ (2 ** np.arange(11, -1, -1))
    np.testing.assert_array_equal(idx, np.arange(4096))


def test_vertices_form_an_icosahedron():
    np.testing.assert_allclose(np.linalg.norm(VERTICES, axis=1), 1.0, rtol=0, atol=1e-12)
    dist = vertex_distances()
    assert np.all(dist >= 0)
    for d, count in ((0, 1), (1, 5), (2, 5), (3, 1)):
        np.testing.assert_array_equal((dist == d).sum(axis=1), np.full(12, count))
    # antipodes are opposite vectors
    anti = np.argmax(dist == 3, axis=1)
    np.testing.assert_allclose(VERTICES[anti], -VERTICES, rtol=0, atol=1e-12)


def test_label_is_a_function_of_the_invariants(task):
    inv = invariants(all_patterns())
    np.testing.assert_array_equal(inv[:, 1] + inv[:, 2] + inv[:, 3],
                                  inv[:, 0] * (inv[:, 0] - 1) // 2)
    groups = defaultdict(set)
    for key, y in zip(map(tuple, inv), task.labels):
        groups[key].add(int(y))
    assert all(len(v) == 1 for v in groups.values())
    assert len(groups) == 64


def test_rule_is_a_linear_threshold_with_half_unit_margin(task):
    f = all_patterns()
    score = rule_score(f)
    np.testing.assert_array_equal(score, invariants(f) @ RULE_WEIGHTS)
    margin = rule_margin(f)
    np.testing.assert_array_equal(margin > 0, task.labels == 1)
    assert np.abs(margin).min() == 0.5
    assert RULE_THRESHOLD == 98.5
    assert score.min() == 0 and score.max() == 128


def _permutation_of(rotation):
    """The permutation of the vertices induced by an orthogonal map."""
    img = VERTICES @ rotation.T
    perm = np.argmin(np.linalg.norm(img[:, None, :] - VERTICES[None, :, :], axis=2), axis=1)
    np.testing.assert_allclose(VERTICES[perm], img, rtol=0, atol=1e-9)
    return perm


def _rotation(axis, angle):
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


@pytest.mark.parametrize("which", ["five_fold", "three_fold", "inversion", "mirror"])
def test_labels_are_invariant_under_icosahedral_symmetries(task, which):
    if which == "five_fold":
        g = _rotation(VERTICES[0], 2 * math.pi / 5)
    elif which == "three_fold":
        dist = vertex_distances()
        a, b = np.flatnonzero(dist[0] == 1)[:2]
        if dist[a, b] != 1:
            b = [j for j in np.flatnonzero(dist[0] == 1) if dist[a, j] == 1][0]
        g = _rotation(VERTICES[0] + VERTICES[a] + VERTICES[b], 2 * math.pi / 3)
    elif which == "inversion":
        g = -np.eye(3)
    else:
        g = np.diag([-1.0, 1.0, 1.0])  # the coordinate planes are mirror planes
    perm = _permutation_of(g)
    assert sorted(perm) == list(range(12))
    f = all_patterns()
    moved = np.empty_like(f)
    moved[:, perm] = f
    idx = moved.astype(np.int64) @ (2 ** np.arange(11, -1, -1))
    np.testing.assert_array_equal(task.labels[idx], task.labels)


def test_noise_gives_a_sigmoid_of_the_margin():
    noise = 2.0
    t = tishby12(noise)
    margin = rule_margin(all_patterns())
    np.testing.assert_allclose(t.p_y_given_x[:, 1], 1 / (1 + np.exp(-margin / noise)),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t.p_y_given_x.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    i_xy = ibsolver.mutual_information(t.p_xy)
    assert 0.3 < i_xy < H_Y
    assert ibsolver.conditional_entropy(t.p_xy) > 0.1
    np.testing.assert_array_equal(t.extra_labels["rule"], tishby12().labels)
    # sampled training labels are reproducible and follow p(y|x)
    np.testing.assert_array_equal(t.labels, tishby12(noise, random_state=0).labels)
    assert not np.array_equal(t.labels, tishby12(noise, random_state=1).labels)
    assert abs(t.labels.mean() - t.p_y_given_x[:, 1].mean()) < 0.03


def test_small_noise_tends_to_the_rule():
    t = tishby12(1e-3)
    np.testing.assert_array_equal(t.labels, tishby12().labels)
    np.testing.assert_allclose(ibsolver.mutual_information(t.p_xy), H_Y, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_noise_is_rejected(bad):
    with pytest.raises(ValueError, match="noise"):
        tishby12(bad)


def test_noise_type_is_checked():
    with pytest.raises(TypeError, match="noise"):
        tishby12("0.1")


def test_load_var_u_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        load_var_u(tmp_path / "nope.mat")


def test_load_var_u_missing_key(tmp_path):
    from scipy.io import savemat

    path = tmp_path / "bad.mat"
    savemat(path, {"F": np.zeros((4, 12), dtype=np.uint8)})
    with pytest.raises(ValueError, match="'y'"):
        load_var_u(path)


def test_invariants_reject_non_binary():
    with pytest.raises(ValueError, match="x must"):
        invariants(np.full((2, 12), 2))
    with pytest.raises(ValueError, match="x must"):
        invariants(np.zeros((2, 11)))
