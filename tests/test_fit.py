"""The LSA model is fitted on a sample streamed from the catalog: the same model as a fit on
the sample held in memory, and the sample is the same on every pass."""

from __future__ import annotations

import numpy as np

from rag_assistant import Assistant
from rag_assistant.store.embeddings import LSAEmbedder


def test_the_sample_is_every_step_th_chunk_the_same_on_every_pass(assistant: Assistant):
    catalog = assistant.index.catalog
    rows = catalog._conn().execute("SELECT rowid, terms FROM chunks ORDER BY rowid").fetchall()
    assert len(rows) > 300
    limit = len(rows) // 3
    sample = catalog.sample_chunk_terms(limit)
    assert sample.step == 3
    expected = [terms.split() for rowid, terms in rows if rowid % 3 == 0][:limit]
    first, second = list(sample), list(sample)
    assert len(first) == limit
    assert first == second == expected


def test_a_fit_on_the_stream_equals_a_fit_on_lists(assistant: Assistant):
    sample = assistant.index.catalog.sample_chunk_terms(400)
    streamed = LSAEmbedder.fit(sample, dimensions=32)
    held = LSAEmbedder.fit(list(sample), dimensions=32)
    assert streamed.vocabulary == held.vocabulary
    assert np.array_equal(streamed.idf, held.idf)
    assert np.array_equal(streamed.components, held.components)
    assert streamed.fitted_on == held.fitted_on == 400
    query = "speculative decoding with a draft model"
    assert np.array_equal(streamed.embed_query(query), held.embed_query(query))


# --- the SVD, sized to the data ------------------------------------------------------------


def _sparse(rows: int, columns: int, rank: int, *, seed: int = 0):
    """A nonnegative sparse matrix of about ``rank`` topics plus a little noise."""
    from scipy.sparse import csr_matrix

    rng = np.random.default_rng(seed)
    topics = rng.random((rank, columns)) * (rng.random((rank, columns)) < 0.05)
    mix = rng.random((rows, rank)) * (rng.random((rows, rank)) < 0.3)
    dense = mix @ topics + 0.01 * rng.random((rows, columns)) * (rng.random((rows, columns)) < 0.02)
    return csr_matrix(dense.astype(np.float32))


def _reference(matrix, k: int) -> np.ndarray:
    _, _, vt = np.linalg.svd(matrix.toarray().astype(np.float64), full_matrices=False)
    return vt[:k]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared cosine of the principal angles between the row spaces (1: the same)."""
    m = a.astype(np.float64) @ b.astype(np.float64).T
    return float((m * m).sum() / min(len(a), len(b)))


def test_a_rank_sized_fit_is_exact(monkeypatch):
    from rag_assistant.store import embeddings

    matrix = _sparse(120, 400, rank=30)
    k = 60  # k is near the rank of a 120-row matrix: the exact path
    called = []
    monkeypatch.setattr(
        embeddings, "_exact_components", lambda m, k: called.append(k) or _reference(m, k)
    )
    embeddings.top_components(matrix, k)
    assert called == [k]
    monkeypatch.undo()

    got = embeddings.top_components(matrix, k)
    want = _reference(matrix, k)
    assert got.shape == (k, 400) and got.dtype == np.float32
    assert np.allclose(got @ got.T, np.eye(k), atol=1e-4)  # orthonormal rows
    # each component is the reference's up to sign
    cosines = np.abs(np.sum(got.astype(np.float64) * want, axis=1))
    assert np.all(cosines[:40] > 0.999)  # the directions of distinct singular values
    assert _overlap(got, want) > 0.999


def test_a_rank_deficient_matrix_gives_fewer_components_and_no_nan():
    from scipy.sparse import vstack

    from rag_assistant.store.embeddings import top_components

    base = _sparse(10, 300, rank=4)
    matrix = vstack([base] * 8).tocsr()  # 80 rows, rank at most 10
    got = top_components(matrix, 40)
    assert np.isfinite(got).all()
    assert 1 <= len(got) <= 10
    assert np.allclose(got @ got.T, np.eye(len(got)), atol=1e-4)


def test_a_large_fit_is_randomized_and_finds_the_top_subspace():
    from rag_assistant.store.embeddings import top_components

    matrix = _sparse(3000, 2500, rank=20, seed=1)
    k = 20  # far below the matrix's size: the randomized path
    got = top_components(matrix, k)
    assert got.shape == (k, 2500)
    assert _overlap(got, _reference(matrix, k)) > 0.99


def test_an_auto_fit_of_the_bundled_corpus_does_not_import_scikit_learn(assistant: Assistant):
    """With ``fit_method="auto"`` scikit-learn is imported for large fits only (its import
    took longer than this fit). The default is "randomized", which retrieved better."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from rag_assistant.index import Index\n"
        "from rag_assistant.settings import Settings\n"
        "from rag_assistant.store.embeddings import LSAEmbedder\n"
        "catalog = Index(Settings(home=sys.argv[1])).catalog\n"
        "sample = catalog.sample_chunk_terms(50_000)\n"
        "model = LSAEmbedder.fit(sample, dimensions=384, method='auto')\n"
        "print(model.fitted_on, model.dimensions, 'sklearn' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(assistant.settings.home)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    fitted_on, dimensions, imported = done.stdout.split()
    assert int(fitted_on) > 500 and int(dimensions) == 384
    assert imported == "False"


def test_the_svd_runs_on_one_blas_thread_in_a_fresh_process():
    """Every BLAS library the SVD uses, scipy's own included (loaded on first use), is held
    to one thread while it runs: OpenBLAS threads spin on shared cores."""
    import subprocess
    import sys

    script = (
        "from threadpoolctl import threadpool_info\n"
        "from rag_assistant.store import embeddings\n"
        "seen = []\n"
        "def spy(matrix, k, **_):\n"
        "    import scipy.linalg  # what the SVD uses, loaded by now\n"
        "    seen.extend(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas')\n"
        "    return real(matrix, k)\n"
        "real, embeddings._exact_components = embeddings._exact_components, spy\n"
        "import scipy.sparse\n"
        "embeddings.top_components(scipy.sparse.random(60, 80, density=0.2, format='csr'), 20)\n"
        "print(len(seen) >= 2, set(seen))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "{1}"]
