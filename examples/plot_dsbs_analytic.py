"""
The doubly symmetric binary source against its analytic curve
==============================================================

X is a fair bit and Y is X flipped with probability ``eps``: the doubly symmetric binary
source (DSBS). Its IB curve is known in closed form. The best T is X flipped with some
probability d (Mrs. Gerber's lemma shows nothing does better), which gives, with h the binary
entropy and ``a * b = a (1 - b) + b (1 - a)``,

.. math::

    I(X;T) = 1 - h(d), \\qquad I(T;Y) = 1 - h(\\varepsilon * d),
    \\qquad 0 \\le d \\le 1/2 .

The curve leaves zero at one split, beta = 1 / (1 - 2 eps)^2 = 1 / s2^2 (s2 = 1 - 2 eps is
the maximal correlation of X and Y). Below we trace the curve with :func:`ibsolver.ib_curve`
and compare every computed point with the formula.
"""

import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import brentq

import ibsolver
from ibsolver import plotting

eps = 0.1
p_xy = np.array([[1 - eps, eps], [eps, 1 - eps]]) / 2

curve = ibsolver.ib_curve(p_xy)
print(curve)

# %%
# The analytic curve, as a function of the flip probability d of the best encoder.


def binary_entropy(p):
    p = np.clip(p, 1e-300, 1.0)
    q = np.clip(1.0 - p, 1e-300, 1.0)
    return -(p * np.log2(p) + q * np.log2(q))


d = np.linspace(0.0, 0.5, 2001)
analytic_i_xt = 1.0 - binary_entropy(d)
analytic_i_ty = 1.0 - binary_entropy(eps * (1 - d) + d * (1 - eps))

# %%
# Every computed point lies on the analytic curve: solve I(X;T) = 1 - h(d) for d in
# [0, 1/2] (h increases there) and compare I(T;Y).


def flip_probability(i_xt):
    if i_xt >= 1.0:
        return 0.0
    return brentq(lambda d: 1.0 - binary_entropy(d) - i_xt, 0.0, 0.5, xtol=1e-15)


d_of_point = np.array([flip_probability(r) for r in curve.i_xt])
expected_i_ty = 1.0 - binary_entropy(eps * (1 - d_of_point) + d_of_point * (1 - eps))
print(f"{curve.i_xt.size} points; largest |I(T;Y) - analytic| = "
      f"{np.max(np.abs(curve.i_ty - expected_i_ty)):.1e} bit")
print(f"onset: beta_0 = {curve.onset_beta:.6f}, 1/(1-2 eps)^2 = {1 / (1 - 2 * eps) ** 2:.6f}")

# %%
# The curve and the analytic one on the information plane.

fig, ax = plt.subplots(figsize=(5.5, 4.2))
ax.plot(analytic_i_xt, analytic_i_ty, color="0.6", lw=5, alpha=0.5, label="analytic")
plotting.plot_curve(curve, ax=ax)
ax.set_title(f"DSBS, eps = {eps}")
fig.tight_layout()
