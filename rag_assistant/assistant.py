"""The Python API: :class:`Assistant`. The CLI, the Gradio UI and the evaluation runner are
thin layers over it.

>>> from rag_assistant import Assistant
>>> assistant = Assistant()                       # settings from env and defaults
>>> report = assistant.ingest(["papers/"])        # added, updated, unchanged, removed, skipped
>>> sources = assistant.retrieve("question", k=5) # each: .title, .paper_id, .score, .text
>>> answer = assistant.ask("question")            # .text, .citations, .refused, .mode
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from . import corpus
from .answer.answerer import Answerer, Request
from .answer.conversation import (
    Conversation,
    condense_offline_turns,
    history_exchanges,
    referenced_citations,
)
from .answer.extractive import ExtractiveAnswerer
from .answer.judges import LexicalJudge, SupportJudge
from .answer.policy import AnswerabilityPolicy
from .answer.retrieval import Retriever
from .errors import EmptyQuestionError, IndexEmptyError, InvalidParameterError, QuestionTooLongError
from .index import Index
from .settings import MAX_K, Settings, build_settings
from .text.tokens import count_over
from .types import (
    REFUSAL,
    Answer,
    Event,
    IndexStatus,
    IngestReport,
    Problem,
    Progress,
    Recovery,
    Source,
    Status,
    Turn,
    final_answer,
    no_progress,
)

log = logging.getLogger(__name__)


class Assistant:
    """Question answering over the indexed abstracts, with citations checked by code.

    ``settings``: a :class:`Settings` (default: from the environment); keyword ``overrides``
    are merged on top and validated, e.g. ``Assistant(home="/tmp/idx")`` or
    ``Assistant(settings, retrieval={"k": 3})``. ``llm``: a chat model to use instead of the
    configured endpoint (tests inject a scripted one). ``judge``: the claim support judge
    (default: lexical, or the model with ``answer.support = "llm"``).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        llm=None,
        embedder=None,
        judge: SupportJudge | None = None,
        **overrides,
    ) -> None:
        if settings is None:
            settings = build_settings(**overrides)
        elif overrides:
            settings = settings.merged(**overrides)
        self.settings = settings
        self.index = Index(settings, embedder=embedder)
        self.retriever = Retriever(self.index, settings.retrieval)
        self._llm = llm
        self._llm_lock = threading.Lock()
        self._given_judge = judge
        self.judge = judge or self._default_judge()
        self._bootstrap_lock = threading.Lock()

    # --- modes ---------------------------------------------------------------------------

    @property
    def mode(self) -> Literal["offline", "llm"]:
        """'llm' when a model is injected or an endpoint is configured (and not disabled)."""
        if self.settings.answer.llm == "offline":
            return "offline"
        if self._llm is not None or self.settings.llm_configured:
            return "llm"
        return "offline"

    def with_answer_mode(self, llm: Literal["auto", "offline", "openai"]) -> Assistant:
        """A view of this assistant that answers in another mode (``settings.answer.llm``):
        it shares the index, the retriever and an injected model, so it costs nothing, and
        the original is left as it is (the UI keeps one view per mode for all users)."""
        if llm == self.settings.answer.llm:
            return self
        view = copy.copy(self)
        view.settings = self.settings.merged(answer={"llm": llm})
        view._llm_lock = threading.Lock()
        view.judge = self._given_judge or view._default_judge()
        return view

    def chat_model(self):
        """The chat model answers are generated with: the injected one, else a
        :class:`~rag_assistant.answer.llm.ChatModel` for the configured endpoint (made once)."""
        with self._llm_lock:
            if self._llm is None:
                from .answer.llm import ChatModel

                self._llm = ChatModel(self.settings)
            return self._llm

    def _default_judge(self) -> SupportJudge:
        if self.settings.answer.support == "llm" and self.mode == "llm":
            from .answer.judges import LLMJudge

            return LLMJudge(self.chat_model(), cache_dir=self.settings.home / "judge-cache")
        return LexicalJudge(self.settings.answer.support_threshold)

    def offline_reason(self) -> str | None:
        """Why answers are offline, when they are (for the notice)."""
        if self.mode != "offline":
            return None
        if self.settings.answer.llm == "offline":
            return "offline mode was chosen"
        if self.settings.answer.llm == "openai":
            return "an LLM was asked for, but no OPENAI_API_KEY or OPENAI_BASE_URL is set"
        return "no OPENAI_API_KEY or OPENAI_BASE_URL is set"

    def policy(self) -> AnswerabilityPolicy:
        """The answerability policy over the index as it is now (both answerers use it)."""
        lexical = self.index.lexical()
        limits = {"min_evidence", "min_meaning", "min_meaning_lay", "signals"}
        return AnswerabilityPolicy(
            lexical.idf,
            **self.settings.answer.model_dump(include=limits),
            spelled=lexical.spelled,
            df=lexical.df,
            rare_df=self.index.rare_df(),
            written=self.index.writes,
            named=self.index.papers_named,
        )

    def answerer(self) -> Answerer:
        """The answerer of this assistant's mode, given its collaborators."""
        policy = self.policy()
        if self.mode == "llm":
            from .answer.generated import GeneratedAnswerer

            return GeneratedAnswerer(
                self.chat_model(),
                self.judge,
                policy,
                answer=self.settings.answer,
                openai=self.settings.openai,
                prompts_dir=self.settings.prompts_dir,
            )
        return ExtractiveAnswerer(
            policy, self.judge, answer=self.settings.answer, reason=self.offline_reason()
        )

    # --- ingest and index ------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        prune: bool = False,
        skip_invalid: bool = False,
        categories: Sequence[str] = (),
        progress: Progress = no_progress,
    ) -> IngestReport:
        """Add or update the papers in ``paths`` (files or folders; listing .txt, .jsonl,
        .json, .csv, optionally .gz). Idempotent; ``prune`` removes papers their sources no
        longer hold; ``skip_invalid`` reports broken records instead of stopping."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        return self.index.ingest(
            paths, prune=prune, strict=not skip_invalid, categories=categories, progress=progress
        )

    def ingest_bundled(self, *, progress: Progress = no_progress) -> IngestReport:
        """Ingest the sample corpus shipped with the package."""
        return self.ingest([corpus.bundled_corpus_dir()], progress=progress)

    def status(self) -> IndexStatus:
        return self.index.status()

    def check(self) -> list[Problem]:
        return self.index.check()

    def repair(self, *, progress: Progress = no_progress) -> list[Problem]:
        return self.index.repair(progress)

    def rebuild(
        self, *, progress: Progress = no_progress, allow_shrink: bool = False
    ) -> IngestReport:
        """Re-chunk and re-embed everything with the current settings into a new index that
        replaces the old one once complete and verified (see ``store/rebuild.py``)."""
        return self.index.rebuild(progress, allow_shrink=allow_shrink)

    def resume_interrupted(self, *, progress: Progress = no_progress) -> Recovery:
        """Complete what an interrupted ingest or rebuild left undone; cheap when nothing
        was (the CLI and the UI call it at start). Returns a ``types.Recovery``."""
        return self.index.resume(progress)

    def _ensure_index(self) -> str | None:
        """Ingest the bundled corpus into an empty index (once); returns the notice."""
        if not self.index.is_empty():
            return None
        with self._bootstrap_lock:
            if not self.index.is_empty():
                return None
            if not self.settings.auto_ingest_bundled:
                raise IndexEmptyError(
                    f"the index in {self.settings.home} is empty; add papers with "
                    "`rag-assistant ingest PATH`"
                )
            report = self.ingest_bundled()
            return (
                f"The index was empty, so the bundled sample corpus was ingested "
                f"({report.papers} papers from {report.files} files)."
            )

    # --- questions -----------------------------------------------------------------------

    def validate_question(self, question: object) -> str:
        """The question stripped, or a typed error: empty, too long for the token budget."""
        if not isinstance(question, str) or not question.strip():
            raise EmptyQuestionError("the question is empty; ask something about the papers")
        question = question.strip()
        limit_chars = self.settings.limits.max_question_chars
        limit_tokens = self.settings.answer.max_question_tokens
        if len(question) > limit_chars:
            raise QuestionTooLongError(
                f"the question is {len(question):,} characters long; the limit is "
                f"{limit_chars:,} characters and {limit_tokens} tokens"
            )
        n_tokens = count_over(question, limit_tokens, self.settings.chunking.tokenizer)
        if n_tokens is not None:
            raise QuestionTooLongError(
                f"the question has {n_tokens} tokens; the limit is {limit_tokens} "
                "(RAG_ASSISTANT_ANSWER__MAX_QUESTION_TOKENS)"
            )
        return question

    def validate_k(self, k: object) -> int:
        """``k`` (papers to retrieve) as a whole number from 1 to the settings' maximum, the
        configured default when None; anything else raises :class:`InvalidParameterError`."""
        if k is None:
            return self.settings.retrieval.k
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidParameterError(
                f"the number of papers must be a whole number from 1 to {MAX_K}, not {k!r}"
            )
        return k

    def retrieve(self, question: str, k: int | None = None) -> list[Source]:
        """The ``k`` papers that best match ``question``, best first, each with its best
        chunks; titles come from the index."""
        question = self.validate_question(question)
        k = self.validate_k(k)
        self._ensure_index()
        return self.retriever.retrieve(question, k)

    def ask(self, question: str, *, k: int | None = None, history: Iterable[object] = ()) -> Answer:
        """Answer ``question`` with citations; ``history``: earlier turns (see :meth:`chat`)."""
        return final_answer(self._events(question, k=k, history=history, stream=False))

    def stream(
        self, question: str, *, k: int | None = None, history: Iterable[object] = ()
    ) -> Iterator[Event]:
        """Yield :class:`Status` and :class:`TextDelta` events, then one :class:`Final`
        carrying the checked answer (citations, claims)."""
        return self._events(question, k=k, history=history, stream=True)

    def chat(self, history: Iterable[object], message: str, *, k: int | None = None) -> Answer:
        """Answer ``message`` as a follow-up of ``history``: :class:`Turn` objects, chat
        messages (``{"role", "content"}``), or earlier questions as strings."""
        return self.ask(message, k=k, history=history)

    def conversation(self, turns: Iterable[Turn] = ()) -> Conversation:
        """A :class:`Conversation` that keeps its turns and their sources."""
        return Conversation(self, turns)

    # --- llama-index ---------------------------------------------------------------------

    def as_retriever(self, *, k: int | None = None):
        """A llama-index ``BaseRetriever`` over this assistant's hybrid retrieval: one
        ``NodeWithScore`` per paper, with its title, id and best chunks (see
        :mod:`rag_assistant.llamaindex`; llama-index is imported only now)."""
        from .llamaindex import AssistantRetriever

        return AssistantRetriever(self, k=k)

    def as_query_engine(self, *, k: int | None = None):
        """A llama-index query engine answering with this assistant: its ``Response``
        carries the checked citations and claims in ``metadata`` (see
        :mod:`rag_assistant.llamaindex`)."""
        from .llamaindex import AssistantQueryEngine

        return AssistantQueryEngine(self, k=k)

    # --- the answer pipeline ---------------------------------------------------------------

    def _events(
        self, question: str, *, k: int | None, history: Iterable[object], stream: bool
    ) -> Iterator[Event]:
        question = self.validate_question(question)
        k = self.validate_k(k)
        notices: list[str] = []
        bootstrap = self._ensure_index()
        if bootstrap:
            notices.append(bootstrap)
        history = list(history)
        standalone, prefer, pinned = self._standalone(question, history)
        yield Status("retrieving")
        sources = self.retriever.retrieve(standalone, k, prefer=prefer, pin=pinned)
        request = Request(question, standalone, history, notices, stream)
        yield from self.answerer().events(request, sources)

    def _standalone(self, question: str, history: list[object]) -> tuple[str, list[str], list[str]]:
        """The question to search for, the papers the previous turn cited (preferred), and
        the papers the message points at by position ("the first one": retrieved first)."""
        if not history:
            return question, [], []
        prefer: list[str] = []
        last = history[-1]
        if isinstance(last, Turn):
            prefer = [c.paper_id for c in last.answer.citations]
            pointed = referenced_citations(question, last.answer.citations)
            if pointed:
                titles = "; ".join(c.title for c in pointed)
                return f"{question} (about: {titles})", prefer, [c.paper_id for c in pointed]
        if self.mode == "llm":
            from .answer.conversation import condense_with_model

            standalone = condense_with_model(
                self.chat_model(), history, question, prompts_dir=self.settings.prompts_dir
            )
            return standalone, prefer, []
        standalone, condensed = condense_offline_turns(history_exchanges(history), question)
        return standalone, prefer if condensed else [], []


__all__ = ["REFUSAL", "Assistant"]
