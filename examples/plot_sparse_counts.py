"""
A sparse table of counts
========================

Counts tables from data are sparse: documents x words, cells x genes, neurons x stimuli.
:func:`ibsolver.ib_curve` takes a ``scipy.sparse`` table of counts with
``normalize=True``. The kernel works on the non-zeros, but the table is still made dense
when it is checked, and whole curves of large tables take minutes or more (a 2000 x 1000
version of this table did not finish in 5 minutes): this example is kept small so that it
runs in seconds.

The table: 200 documents, each 30 words drawn from one of 4 topics (sparse word
distributions over a vocabulary of 200). The topic of a document is what its words say
about the word distribution, so about log2(4) = 2 bits of I(X;T) should capture most of
what can be captured, and 4 clusters should do it.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse

import ibsolver
from ibsolver import plotting

rng = np.random.default_rng(0)
n_docs, n_words, n_topics, doc_length = 200, 200, 4, 30
topics = rng.dirichlet(np.full(n_words, 0.05), size=n_topics)
doc_topic = rng.integers(n_topics, size=n_docs)
rows = np.repeat(np.arange(n_docs), doc_length)
words = np.concatenate([rng.choice(n_words, size=doc_length, p=topics[t]) for t in doc_topic])
counts = scipy.sparse.coo_array((np.ones(rows.size, dtype=np.int64), (rows, words)),
                                shape=(n_docs, n_words)).tocsr()
counts.sum_duplicates()

# words no document used have p(y) = 0 (ib_curve would drop them with a note)
counts = counts[:, np.flatnonzero(counts.sum(axis=0))]
print(f"{counts.shape[0]} x {counts.shape[1]} counts, {counts.nnz} non-zeros "
      f"({counts.nnz / np.prod(counts.shape):.1%}), {counts.sum()} words")

# %%
# The curve, with three knobs that keep it short:
#
# * ``max_clusters=6`` caps every encoder at 6 clusters. Without it the cap is one
#   cluster per distinct row (200 here), and at large beta the solver follows hundreds of
#   clusters merging and dying. Where an optimal point needs more clusters than the cap,
#   the curve ends there (``curve.capped``) and says how well the rest is known
#   (``curve.accuracy``), with a ``ConvergenceWarning`` naming the knob.
# * ``locate_transitions=False`` leaves each transition known to its bracket of betas.
# * ``curve_tol=1e-3`` bits between points is plenty for a figure.

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", ibsolver.ConvergenceWarning)
    curve = ibsolver.ib_curve(counts, normalize=True, max_clusters=6,
                              locate_transitions=False, curve_tol=1e-3)
for w in caught:
    print("warning:", w.message)
print(curve)

# %%
# The encoder that knows the topics, T = topic(X), is a point on or below the curve, like
# any encoder: :func:`ibsolver.score_encoder` gives its gap below the bound. A gap at
# round-off level says the capped curve ends at the topic partition.

p_xy = counts.toarray() / counts.sum()
topic_encoder = np.eye(n_topics)[doc_topic]
score = ibsolver.score_encoder(p_xy, topic_encoder, curve=curve)
print(f"T = topic: I(X;T) = {score.i_xt:.4f} bit, I(T;Y) = {score.i_ty:.4f} bit, "
      f"{score.gap:.2e} bit below the curve (log2 {n_topics} = {np.log2(n_topics):.0f})")

# %%
# The curve with the topic encoder, and the number of clusters of the optimum at each beta.
# Past the last computed point (dotted line) the envelope is only the chord to
# (H(X), I(X;Y)); the true curve lies above it by at most ``curve.accuracy``.

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
plotting.plot_curve(curve, ax=axes[0])
axes[0].plot(score.i_xt, score.i_ty, "kx", ms=8, label="T = topic")
axes[0].axvline(curve.i_xt[-1], color="0.5", ls=":", lw=1)
axes[0].set_xlim(0, 1.6 * curve.i_xt[-1])
axes[0].legend(fontsize=8, loc="lower right")
axes[1].step(curve.beta, curve.n_clusters, where="post")
axes[1].set_xscale("log")
axes[1].yaxis.get_major_locator().set_params(integer=True)
axes[1].set_xlabel("β")
axes[1].set_ylabel("clusters of the optimum")
fig.tight_layout()
