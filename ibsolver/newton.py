"""Newton's method on the BA fixed point, for decoder states small enough to factorise.

Near a phase transition the Jacobian J of the BA map has an eigenvalue close to 1, so plain
iteration contracts by 1 - eps per step and needs ~1/eps steps (critical slowing down; tens of
thousands on a 1024 x 2 problem). Newton's step solves (I - J) d = G(theta) - theta and
converges quadratically wherever I - J is invertible, i.e. everywhere except exactly at the
bifurcation. J is analytic (below), in the joint coordinates theta[t, y] = log p(t, y):

    a_t      = log sum_y exp theta[t, y]                    (log p(t))
    l[x, t]  = ((1 - beta) a_t + beta sum_y p(y|x) theta[t, y]) / alpha
    q[x, t]  = softmax_t l[x, t]
    G(theta) = log sum_x p(x, y) q[x, t]                    (=: log R[t, y])

    dl[x, t] / dtheta[t, z] = phi[x, t, z] = ((1 - beta) p(z|t) + beta p(z|x)) / alpha
    J[(t, y), (s, z)] = (delta_ts S[y, t, z] - sum_x p(x, y) q[x, t] q[x, s] phi[x, s, z]) / R[t, y]

with S[y, t, z] = sum_x p(x, y) q[x, t] phi[x, t, z]. Building J costs n k^2 m^2; the solve
(k m)^3 / 3. Every step is safeguarded: a Newton point is kept only if its Lagrangian is no
higher than the current point's (halving the step up to BACKTRACK times; the iteration only
goes downhill, like BA). Near a transition I - J is nearly singular (BA contracts by
1 - 1e-5 per step in the flat directions there) or indefinite (det(I - J) < 0: an odd
number of eigenvalues of J above 1, near a saddle BA is leaving); the Newton step is then
far too long, or heads for the saddle and goes uphill. Then damped steps
(I - J + mu I) delta = G - theta are taken (Levenberg-Marquardt): long along the slow
directions yet bounded, away from a saddle once mu exceeds its negative eigenvalue, and
downhill; mu grows by tens until a step is accepted and falls by ten after each, back to
Newton. What the iteration converges to is checked: a fixed point with det(I - J) <= 0 is
a saddle, not a minimum; it is pushed off along the unstable eigenvector, downhill, and the
caller continues ``guarded``: no undamped step from where det(I - J) <= 0. A chunk where
no step goes downhill is handed back to plain or SQUAREM iterations.
"""
from __future__ import annotations

import logging
from types import ModuleType

import numpy as np
from scipy.linalg.lapack import dgetrf, dgetrs
from scipy.sparse.linalg import ArpackNoConvergence, eigs

from .measures import _arpack_start

logger = logging.getLogger(__name__)

#: largest k * m handled (a dense (k m)^2 Jacobian and its LU factorisation)
MAX_DIM = 600
#: largest n * k^2 intermediate (doubles) built for the Jacobian
MAX_PAIRS = 4_000_000
#: a step longer than this in any log-probability is not taken
MAX_STEP = 8.0
#: the most a Newton step may cost, in BA iterations (see :func:`cost`): dearer ones lose
#: to SQUAREM (compiled in the C++ backend). With 200, Newton's factorisations (damped
#: ones refactorised for every damping) took two thirds of a gaussian-24 curve: 30 s
#: against 18 s with 20; a 128 x 4 curve 7.6 s against 5.5 s; 1024 x 2 the same
MAX_COST = 20
#: the most a step may cost where Newton only finishes a solve that SQUAREM brought close
#: (see ibsolver.solve.solve_from_state): a few steps there replace thousands of iterations
POLISH_MAX_COST = 200
#: halvings of a Newton step that raised the Lagrangian before damping is tried
BACKTRACK = 3
#: largest k * m for a full eigendecomposition of J (some 40 times its LU factorisation);
#: above it the top eigenvector comes from Arnoldi iteration
EIG_MAX_DIM = 200
#: Levenberg-Marquardt damping: from this (where a Newton step is refused) up by tens to
#: MAX_DAMPING; after each accepted step the next starts ten times lower, Newton below
MIN_DAMPING = 1e-6
MAX_DAMPING = 0.1
#: a cluster lighter than this ends the Newton chunk (the caller drops it; see
#: ibsolver.solve.DROP_MASS)
LOG_DEAD_MASS = float(np.log(1e-14))
#: push off a saddle fixed point, in log-probability along the unstable eigenvector
SADDLE_PUSH = 1e-3


def cost(n_x: int, n_clusters: int, n_y: int) -> float:
    """One Newton step (building J, about n k^2 m^2, and factorising it) in units of one BA
    iteration (about 10 n k m)."""
    dim = n_clusters * n_y
    return (n_x * n_clusters * dim * n_y + dim ** 3 / 3.0) / (10.0 * n_x * dim)


def applicable(n_x: int, n_clusters: int, n_y: int, alpha: float,
               max_cost: float = MAX_COST) -> bool:
    """Whether Newton's method is available and a step costs at most ``max_cost`` BA
    iterations."""
    return (alpha > 0.0 and 1 < n_clusters and n_clusters * n_y <= MAX_DIM
            and n_x * n_clusters ** 2 <= MAX_PAIRS and cost(n_x, n_clusters, n_y) <= max_cost)


def _encoder(p_y_given_x, theta, beta, alpha):
    """q[x, t] and the input decoder p(z|t) for joint log state theta. An entry -inf
    (p(t, z) = 0) bars every x with p(z|x) > 0 from t: q[x, t] = 0 exactly."""
    a = np.logaddexp.reduce(theta, axis=1)
    finite = np.isfinite(theta)
    logit = ((1.0 - beta) * a + beta * (p_y_given_x @ np.where(finite, theta, 0.0).T)) / alpha
    logit[(p_y_given_x > 0) @ (~finite).T.astype(np.int64) > 0] = -np.inf
    logit -= logit.max(axis=1, keepdims=True)
    q = np.exp(logit)
    q /= q.sum(axis=1, keepdims=True)
    return q, np.exp(theta - a[:, None])


def jacobian(p_x: np.ndarray, p_y_given_x: np.ndarray, theta: np.ndarray, beta: float,
             alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(G(theta), J): the BA map in joint log coordinates and its Jacobian, shape
    (k m, k m) with rows and columns ordered (t, y). Entries of theta may be -inf
    (p(t, y) = 0, a pattern the map keeps); J's rows and columns for them are not
    finite and are not used (see :func:`newton_iterations`)."""
    n, m = p_y_given_x.shape
    k = theta.shape[0]
    q, p_z_given_t = _encoder(p_y_given_x, theta, beta, alpha)
    p_xy = p_x[:, None] * p_y_given_x
    r = q.T @ p_xy                                                  # R[t, y]
    pairs = (q[:, :, None] * q[:, None, :]).reshape(n, k * k)      # q[x, t] q[x, s]
    yz = (p_xy[:, :, None] * p_y_given_x[:, None, :]).reshape(n, m * m)
    c = (p_xy.T @ pairs).reshape(m, k, k)                           # C[y, t, s]
    d = (yz.T @ pairs).reshape(m, m, k, k)                          # D[y, z, t, s]
    e = (yz.T @ q).reshape(m, m, k)                                 # E[y, z, t]
    cross = ((1.0 - beta) * np.einsum("sz,yts->tysz", p_z_given_t, c)
             + beta * d.transpose(2, 0, 3, 1))                      # [t, y, s, z]
    own = (1.0 - beta) * p_z_given_t[:, None, :] * r[:, :, None] + beta * e.transpose(2, 0, 1)
    jac = -cross
    jac[np.arange(k), :, np.arange(k), :] += own                    # delta_ts S[y, t, z]
    with np.errstate(divide="ignore", invalid="ignore"):
        jac /= alpha * r[:, :, None, None]
        return np.log(r), jac.reshape(k * m, k * m)


def newton_iterations(kernel: ModuleType, p_x: np.ndarray, p_y_given_x: np.ndarray,
                      log_p_t: np.ndarray, log_p_y_given_t: np.ndarray, beta: float,
                      alpha: float, max_iter: int, tol: float, n_threads: int | None = None,
                      guarded: bool = False) -> tuple[np.ndarray, np.ndarray, int, float, np.ndarray, bool]:
    """The five values of ``kernel.run_iterations`` (:class:`~ibsolver.backends.Iterated`)
    plus a sixth: whether the iteration
    reached a saddle and was pushed off it (continue ``guarded`` then). ``max_iter``
    counts map evaluations.

    Returns early (not converged) when a Newton step is refused, so the caller can fall
    back to plain or SQUAREM iterations for the next chunk.

    Where some p(t, y) = 0 (zeros in p(x, y)), the map keeps them 0: every x with
    p(y|x) > 0 is barred from t. Newton then works on the other coordinates of theta,
    the support, which is fixed within the chunk (the chunk ends if it changes)."""
    history = []
    n_eval = 0
    residual = np.inf
    k, m = log_p_y_given_t.shape
    support = np.isfinite(log_p_t[:, None] + log_p_y_given_t)  # p(t, y) > 0
    on = support.ravel()
    # compiled where the backend has one (it needs every p(t, y) > 0)
    jacobian_of = getattr(kernel, "jacobian", jacobian) if on.all() else jacobian

    def embedded(delta_on):
        """A step on the support as a full (k, m) step, 0 where p(t, y) = 0."""
        delta = np.zeros((k, m))
        delta[support] = delta_on
        return delta

    def step(lp, lpy):
        nonlocal n_eval
        out = kernel.run_iterations(p_x, p_y_given_x, lp, lpy, beta, alpha, 1, 0.0, n_threads)
        n_eval += 1
        history.append(out.history[0])
        return out.log_p_t, out.log_p_y_given_t, out.residual, out.history[0]

    def from_joint(theta):
        a = np.logaddexp.reduce(theta, axis=1)
        return a - np.logaddexp.reduce(a), theta - a[:, None]

    def downhill(theta, delta, l_before, halvings):
        """For the first h with a Lagrangian no higher than ``l_before`` at the point
        theta + delta / 2^h: (that point as (log p(t), log p(y|t)), the map there), or None."""
        if not np.all(np.isfinite(delta)):  # I - J singular to working precision
            return None
        delta = delta * min(1.0, MAX_STEP / max(np.max(np.abs(delta)), 1e-300))
        for h in range(halvings + 1):
            point = from_joint(theta + delta / 2 ** h)
            out = step(*point)
            if np.isfinite(out[3]) and out[3] <= l_before + 1e-13 * (1.0 + abs(l_before)) \
                    and out[0].size == k:
                return point, out
            history.pop()  # not kept: the path records accepted points only
        return None

    def damped(theta, jac, r, l_before, mu):
        """Levenberg-Marquardt: (I - J + mu I) delta = r for mu = ``mu``, 10 mu, ... up to
        MAX_DAMPING, the first step no longer than MAX_STEP with a Lagrangian no higher
        than ``l_before``. Returns (what downhill returns for it, the damping to start
        from next: a tenth of this one, 0 (Newton) below MIN_DAMPING), or (None, 0)."""
        while mu <= MAX_DAMPING:
            lu, piv, _ = dgetrf(eye * (1.0 + mu) - jac)
            delta = embedded(dgetrs(lu, piv, r)[0])  # not finite if singular
            if np.all(np.isfinite(delta)) and np.max(np.abs(delta)) <= MAX_STEP:
                accepted = downhill(theta, delta, l_before, 0)
                if accepted is not None:
                    return accepted, (mu / 10.0 if mu / 10.0 >= MIN_DAMPING else 0.0)
            mu *= 10.0
        return None, 0.0

    def refused(lp, lpy, why, *args):
        logger.debug("Newton step refused: " + why, *args)
        return lp, lpy, n_eval, residual, np.asarray(history), False

    det_sign, jac = 1.0, None
    eye, arange = np.eye(int(on.sum())), np.arange(int(on.sum()))
    mu = 0.0  # Levenberg-Marquardt damping; 0: Newton
    # the current point and the map there (the map's value is what a stop returns; a step's
    # trial evaluation is also the next point's: one evaluation per step)
    out = step(log_p_t, log_p_y_given_t)
    while True:
        lp1, lpy1, residual, l1 = out
        theta = log_p_t[:, None] + log_p_y_given_t
        if residual <= tol and jac is not None and det_sign <= 0:
            lp, lpy, residual = _push_off_saddle(step, from_joint, theta, jac, embedded,
                                                 history)
            return lp, lpy, n_eval, residual, np.asarray(history), True
        # a cluster lighter than DEAD_MASS is dead: stop so the caller drops it (Newton
        # would walk its log-mass down to -inf, a fixed point it cannot reach)
        dead = np.min(lp1) < LOG_DEAD_MASS
        done = residual <= tol or n_eval >= max_iter or lp1.size != k or dead
        if done or not np.array_equal(np.isfinite(theta), support):
            return lp1, lpy1, n_eval, residual, np.asarray(history), False
        g, jac = jacobian_of(p_x, p_y_given_x, theta, beta, alpha)
        if not on.all():  # (a copy: not where the support is everything)
            jac = jac[np.ix_(on, on)]
        g_minus_theta = g[support] - theta[support]
        # LAPACK directly: scipy.linalg's checks cost more than the factorisation here. An
        # exactly singular I - J gives a step that is not finite, and is not taken.
        lu, piv, _ = dgetrf(eye - jac)
        det_sign = np.prod(np.sign(np.diag(lu))) * (-1) ** np.count_nonzero(piv != arange)
        delta = embedded(dgetrs(lu, piv, g_minus_theta)[0])
        newton_ok = not (guarded and det_sign <= 0)  # guarded: not into a saddle met before
        accepted = None
        if mu == 0.0 and newton_ok and np.all(np.isfinite(delta)) \
                and np.max(np.abs(delta)) <= MAX_STEP:
            accepted = downhill(theta, delta, l1, BACKTRACK)
        if accepted is None:  # too long (I - J nearly singular), or uphill
            accepted, mu = damped(theta, jac, g_minus_theta, l1, max(mu, MIN_DAMPING))
        if accepted is None:
            return refused(lp1, lpy1, "no step downhill (Newton step %.3g, det(I - J) sign %g)",
                           np.max(np.abs(delta)), det_sign)
        (log_p_t, log_p_y_given_t), out = accepted


def _top_eigenpair(jac):
    """The eigenvalue of J with the largest real part and its (real part of the)
    eigenvector: all eigenvalues where J is small, else Arnoldi iteration (ARPACK; a full
    eigendecomposition of a 500 x 500 J costs 80 ms, Arnoldi 3 ms)."""
    if jac.shape[0] > EIG_MAX_DIM:
        # (seeded: with ARPACK's own start the step off a saddle, and then a whole
        # 256 x 4 curve, differed between two runs in one process: 256 or 220 points)
        try:
            values, vectors = eigs(jac, k=1, which="LR", tol=1e-8,
                                   v0=_arpack_start(jac.shape[0]))
            return float(values[0].real), np.real(vectors[:, 0])
        except ArpackNoConvergence:
            pass
    values, vectors = np.linalg.eig(jac)
    top = np.argmax(np.real(values))
    return float(values[top].real), np.real(vectors[:, top])


def _push_off_saddle(step, from_joint, theta, jac, embedded, history):
    """Newton converged to ``theta`` where det(I - J) <= 0: a saddle. Step off it along the
    eigenvector of J (on the support, placed by ``embedded``) with the largest real
    eigenvalue, to the side with the lower Lagrangian after one BA map; returns that
    map's (log p(t), log p(y|t), residual)."""
    value, v = _top_eigenpair(jac)
    v = embedded(v) * (SADDLE_PUSH / max(np.max(np.abs(v)), 1e-300))
    logger.debug("Newton reached a saddle (largest eigenvalue of J %.6g); pushed off", value)
    sides = [step(*from_joint(theta + sign * v)) for sign in (1.0, -1.0)]
    best = min(sides, key=lambda out: out[3])
    del history[-2:]
    history.append(best[3])
    return best[0], best[1], best[2]
