"""How the LSA fit's SVD method changes the dense side: time, the share of the TF-IDF
matrix's energy the components keep, and dense-only retrieval of the bench's questions
(hit@1 / hit@5 of the paper each question was drawn from, by exact cosine search over every
chunk), for the exact top components and the randomized SVD with several power iterations.

    python bench/fit_quality.py                       # 10,000 synthetic papers
    python bench/fit_quality.py --size 100000 --iterations 5,2

The index is built once (our ingest) in the work directory and reused; each fit runs on the
same catalog sample as an ingest's. One BLAS thread throughout, as the fit uses. Prints a
table and the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def exact_components(matrix, k: int) -> np.ndarray:
    """The exact top ``k`` right singular vectors, from the eigenvectors of the Gram matrix of
    the matrix's smaller side (in float64; slow for a large side: the reference only)."""
    from scipy.linalg import eigh

    matrix = matrix.astype(np.float64)
    wide = matrix.shape[0] <= matrix.shape[1]
    gram = (matrix @ matrix.T if wide else matrix.T @ matrix).toarray()
    size = gram.shape[0]
    values, vectors = eigh(gram, subset_by_index=[size - k, size - 1])
    values, vectors = values[::-1], vectors[:, ::-1]
    if not wide:
        return vectors.T.astype(np.float32)
    sigma = np.sqrt(np.clip(values, 1e-30, None))
    return (np.asarray(matrix.T @ vectors).T / sigma[:, None]).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10_000, help="synthetic papers")
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--iterations", default="5,2,1", help="randomized SVD power iterations")
    parser.add_argument("--no-exact", action="store_true", help="skip the exact components")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rag-fit")
    opts = parser.parse_args(argv)

    import run  # bench/run.py: the corpora and questions of the benchmark
    from threadpoolctl import threadpool_limits

    from rag_assistant import Assistant
    from rag_assistant.settings import Settings
    from rag_assistant.store.embeddings import LSAEmbedder, _tfidf

    opts.workdir.mkdir(parents=True, exist_ok=True)
    paths, _, _, _ = run.corpus_for(str(opts.size), opts.workdir, opts.questions, 0)
    import synth

    picked = synth.sample_for_questions(Path(paths[0]), opts.size, opts.questions, seed=0)
    asked = [q for q in synth.questions_for(picked, opts.questions, seed=0) if q.paper_id]
    home = opts.workdir / f"home-{opts.size}"
    settings = Settings(home=home, auto_ingest_bundled=False)
    assistant = Assistant(settings)
    if assistant.index.is_empty():
        print(f"ingesting {opts.size:,} papers into {home}", file=sys.stderr)
        assistant.ingest(paths)
    catalog = assistant.index.catalog
    sample = catalog.sample_chunk_terms(settings.embedding.fit_sample)
    ids, term_lists = [], []
    for chunk_id, terms in catalog.iter_terms():
        ids.append(chunk_id)
        term_lists.append(terms)
    papers = np.array([cid.split("::")[0] for cid in ids])
    from rag_assistant.text.terms import query_terms

    def evaluate(model: LSAEmbedder) -> tuple[float, float]:
        vectors = model.embed([""] * len(term_lists), terms=term_lists)
        hits1 = hits5 = 0
        for q in asked:
            sims = vectors @ model.embed([q.text], terms=[query_terms(q.text)])[0]
            top = np.argsort(-sims)[:200]
            ranked = list(dict.fromkeys(papers[top]))
            hits1 += ranked[:1] == [q.paper_id]
            hits5 += q.paper_id in ranked[:5]
        return hits1 / len(asked), hits5 / len(asked)

    base = LSAEmbedder.fit(sample, dimensions=settings.embedding.dimensions)
    matrix = _tfidf(sample, base.vocabulary, base.idf)
    total = float(matrix.multiply(matrix).sum())
    k = min(settings.embedding.dimensions, min(matrix.shape) - 1)

    def row(name: str, fit) -> None:
        started = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            components = fit()
        seconds = time.perf_counter() - started
        projected = matrix @ components.T
        energy = float((projected * projected).sum()) / total
        model = LSAEmbedder(
            base.vocabulary,
            base.idf,
            components,
            requested_dimensions=settings.embedding.dimensions,
            fitted_on=base.fitted_on,
        )
        hit1, hit5 = evaluate(model)
        print(
            f"{name:<26} {seconds:8.2f} {energy:8.4f} {hit1:7.3f} {hit5:7.3f}  "
            f"(load {os.getloadavg()[0]:.2f})",
            flush=True,
        )

    print(
        f"{opts.size:,} papers, {len(ids):,} chunks, sample {matrix.shape[0]:,} x "
        f"{matrix.shape[1]:,} terms, {k} components, {len(asked)} questions"
    )
    print(f"{'SVD':<26} {'seconds':>8} {'energy':>8} {'hit@1':>7} {'hit@5':>7}")
    if not opts.no_exact:
        row("exact (Gram eigenvectors)", lambda: exact_components(matrix, k))
    from sklearn.utils.extmath import randomized_svd

    for n_iter in [int(x) for x in opts.iterations.split(",") if x.strip()]:
        row(
            f"randomized, n_iter={n_iter}",
            lambda n_iter=n_iter: randomized_svd(
                matrix, n_components=k, n_iter=n_iter, random_state=0
            )[2],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
