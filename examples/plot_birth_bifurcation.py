"""
A cluster birth before the first instability
============================================

The eigen-analysis of the trivial solution says where it stops being a local optimum:
beta_c = 1 / s2^2, with s2 the maximal correlation of X and Y. On many problems the optimum
leaves zero *earlier*, at beta_0 = 1 / s*, with s* the hypercontractivity coefficient
(the slope of the curve at the origin, s* >= s2^2). There a cluster of vanishing mass is
*born* far from p(y): the trivial solution is still stable, so no small perturbation of it
finds the new branch. :func:`ibsolver.ib_curve` finds it by annealing down from the finest
encoder as well as up from the trivial one, and locates the birth where the growth rate of
a zero-mass cluster crosses 1 (see :doc:`/theory`).

This 8 x 3 table (numpy seed 1) is the project's standard example of a birth.
"""

import matplotlib.pyplot as plt
import numpy as np

import ibsolver
from ibsolver import plotting

p_xy = np.random.default_rng(1).dirichlet(np.ones(24)).reshape(8, 3)

curve = ibsolver.ib_curve(p_xy)
print(curve)

# %%
# Two independent numbers for the same onset: the located birth on the curve, and 1/s*
# from a search over exponential tilts of p(x) (:func:`ibsolver.hypercontractivity`).

s_star, _ = ibsolver.hypercontractivity(p_xy)
print(f"1/s2^2 = {ibsolver.first_instability(p_xy):.6f} (linear instability)")
print(f"beta_0 = {curve.onset_beta:.6f} (located on the curve, {curve.onset_kind})")
print(f"1/s*   = {1 / s_star:.6f} (hypercontractivity)")

# %%
# At beta = 3.2, between the two, the trivial solution is a local optimum, yet a
# solution with two clusters has a lower Lagrangian I(X;T) - beta I(T;Y).

res = ibsolver.solve(p_xy, beta=3.2, random_state=0)
print(res)
print(f"Lagrangian {res.lagrangian:.6f} bit; the trivial solution's is 0")

# %%
# The bifurcation diagram: each cluster's decoder p(y=0|t) against beta, marker area
# proportional to its mass p(t) (the dotted line is p(y=0)). A born cluster enters with
# vanishing mass at a decoder far from the others; a split cluster's two children leave
# its decoder continuously. Beside it, the BA iterations per branch: critical slowing
# down peaks at the splits, not at the births (transcritical bifurcations of the BA map).

fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
plotting.plot_curve(curve, ax=axes[0])
plotting.plot_bifurcation(curve, ax=axes[1])
axes[1].axhline(p_xy.sum(axis=0)[0], color="0.5", ls=":", lw=0.8)
plotting.plot_iterations(curve, ax=axes[2])
fig.tight_layout()
