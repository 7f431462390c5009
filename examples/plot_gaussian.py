"""
Gaussian IB against the discretised solver
==========================================

For jointly Gaussian X and Y the IB curve is analytic (Chechik, Globerson, Tishby and
Weiss, 2005): :func:`ibsolver.gaussian_ib` gives it with its critical betas
beta_i = 1 / (1 - lambda_i). For a scalar pair with correlation rho, lambda = 1 - rho^2 and
the curve leaves zero at beta_c = 1 / rho^2.

:func:`ibsolver.discretize_gaussian` integrates the same pair exactly over a grid of cells.
Any encoder of the binned X is an encoder of X, and binning Y only loses information, so
the discrete curve must lie on or below the analytic one; it approaches it as the bins
get finer, and its onset 1 / s2^2 approaches 1 / rho^2 (the maximal correlation of a
binned normal pair tends to abs(rho)).
"""

import matplotlib.pyplot as plt
import numpy as np

import ibsolver
from ibsolver import plotting

rho = 0.8
gauss = ibsolver.gaussian_ib(1.0, rho, 1.0)
print(gauss)

# %%
# Discretise on 8 and on 12 bins per axis (within 4 standard deviations; the tails go
# into the outer bins) and trace both curves, to 1e-4 bit (``curve_tol``: plenty for a
# figure, and it keeps this example short).

curves = {}
for n_bins in (8, 12):
    p_xy = ibsolver.discretize_gaussian(rho, n_bins, n_bins)
    curves[n_bins] = ibsolver.ib_curve(p_xy, curve_tol=1e-4)
    c = curves[n_bins]
    excess = np.max(c.i_ty - gauss.bound(c.i_xt))  # <= 0 (round-off): on or below
    print(f"{n_bins:2d} x {n_bins:<2d} bins: I(X;Y) = {c.i_xy:.4f} bit "
          f"(Gaussian {gauss.mutual_information:.4f}), onset 1/s2^2 = {c.first_instability:.4f} "
          f"(1/rho^2 = {1 / rho**2:.4f}),\n"
          f"        largest excess over the analytic curve {excess:.1e} bit")

# %%
# The analytic curve bounds both discrete ones; the finer binning comes closer to it.

fig, ax = plt.subplots(figsize=(5.5, 4.2))
i_xt = np.linspace(0.0, 3.0, 400)
ax.plot(i_xt, gauss.bound(i_xt), "k-", lw=1.5, label="Gaussian IB (analytic)")
for (n_bins, c), color in zip(curves.items(), ("C1", "C0")):
    plotting.plot_curve(c, ax=ax, transitions=False, points=False, color=color,
                        label=f"{n_bins} x {n_bins} bins")
ax.set_xlim(0, 3.0)
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
