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
    """The exact top ``k`` right singular vectors."""
    _, _, vt = np.linalg.svd(matrix.toarray().astype(np.float64), full_matrices=False)
    return vt[:k]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared cosine of the principal angles between the row spaces (1: the same)."""
    m = a.astype(np.float64) @ b.astype(np.float64).T
    return float((m * m).sum() / min(len(a), len(b)))


def test_power_iterations_are_sized_to_the_data():
    """Five (the solver the evaluation thresholds were measured with) when the components
    nearly span the matrix, as for the bundled corpus; two for a large matrix."""
    from scipy.sparse import csr_matrix

    from rag_assistant.store.embeddings import power_iterations

    assert power_iterations(csr_matrix((536, 4575)), 384) == 5  # the bundled corpus
    assert power_iterations(csr_matrix((10_340, 5_537)), 384) == 2  # 10,000 papers
    assert power_iterations(csr_matrix((50_000, 100_000)), 384) == 2


def test_a_small_fit_is_the_calibrated_randomized_svd():
    from sklearn.utils.extmath import randomized_svd
    from threadpoolctl import threadpool_limits

    from rag_assistant.store.embeddings import top_components

    matrix = _sparse(300, 900, rank=40)
    with threadpool_limits(limits=1, user_api="blas"):  # as the fit runs it
        _, _, want = randomized_svd(matrix, n_components=250, n_iter=5, random_state=0)
    got = top_components(matrix, 250)
    assert got.shape == want.shape
    assert np.allclose(got, want, atol=1e-4)


def test_a_large_fit_is_randomized_and_finds_the_top_subspace():
    from rag_assistant.store.embeddings import top_components

    matrix = _sparse(3000, 2500, rank=20, seed=1)
    k = 20  # far below the matrix's size: the randomized path
    got = top_components(matrix, k)
    assert got.shape == (k, 2500)
    assert _overlap(got, _reference(matrix, k)) > 0.99


def test_the_svd_runs_on_one_blas_thread_in_a_fresh_process():
    """Every BLAS library the SVD uses, scipy's own included (loaded on first use), is held
    to one thread while it runs: OpenBLAS threads spin on shared cores."""
    import subprocess
    import sys

    script = (
        "from threadpoolctl import threadpool_info\n"
        "from rag_assistant.store import embeddings\n"
        "import sklearn.utils.extmath as extmath\n"
        "seen = []\n"
        "def spy(*args, **kwargs):\n"
        "    import scipy.linalg  # what the SVD uses, loaded by now\n"
        "    seen.extend(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas')\n"
        "    return real(*args, **kwargs)\n"
        "real, extmath.randomized_svd = extmath.randomized_svd, spy\n"
        "import scipy.sparse\n"
        "embeddings.top_components(scipy.sparse.random(60, 80, density=0.2, format='csr'), 20)\n"
        "print(len(seen) >= 2, set(seen))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "{1}"]


def test_a_question_is_embedded_as_a_one_row_batch_is(assistant: Assistant):
    """``embed_query`` computes one row with NumPy (a new process answering does not import
    scipy); it is :meth:`embed`'s row, repeated and unknown words included."""
    import numpy as np

    from rag_assistant.text.terms import terms

    model = assistant.index.embedder()
    for text in ("KV cache KV cache compression", "zqxv unknown words only", "", "What is LoRA?"):
        expected = model.embed([text], terms=[[*terms(text), "cache"]])[0]
        np.testing.assert_allclose(model.embed_query(text, ["cache"]), expected, atol=1e-6)
