"""The OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp via OPENAI_BASE_URL),
through the official ``openai`` client.

Every request streams unless ``openai.stream`` is off, so a slow model is a slow answer
rather than a timeout. A stream has three bounds: the first token within ``openai.timeout``
seconds (a CPU server spends them reading the prompt), no pause between tokens longer than
``openai.idle_timeout``, the whole reply within ``openai.total_timeout``. A stream that stops
after some text (a pause, the bound, a broken connection, no finish reason) is *cut*: the
text so far is kept and a :class:`Finish` says why. A failure before any text becomes one of
the errors of :mod:`rag_assistant.errors`, with a message that never contains the API key and
names the setting to change.

Retries are made here, not by the client: a request refused with 429 or 5xx, or whose
connection failed, is retried ``openai.max_retries`` times with exponential backoff; a request
that timed out only on api.openai.com (or with ``openai.retry_timeouts``), because a local
server keeps computing the request its client abandoned and a retry would queue behind it.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlparse

from ..errors import (
    ConfigurationError,
    LLMAuthenticationError,
    LLMContextLengthError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnavailableError,
)
from ..text.tokens import count, encoding_name_for_model

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# A local server (Ollama, llama.cpp) needs no key, but the client insists on one.
NO_KEY = "no-key-needed"
OPENAI_HOST = "api.openai.com"
MAX_BACKOFF = 8.0
MODELS_TIMEOUT = 10.0
"""Seconds the check of the served models (``GET /models``) may take."""


@dataclass
class Completion:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    model: str | None = None


@dataclass
class UsageReport:
    """An item of :meth:`ChatModel.stream`: the tokens of the reply, as the endpoint reported
    them or, when it reported none (``estimated``), as counted here."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False


@dataclass
class Finish:
    """The last item of :meth:`ChatModel.stream`: why the reply ended. ``"stop"``: the model
    finished; ``"length"``: it hit the token limit; ``"cut"``: the stream stopped before the
    model finished, ``detail`` says why. ``model``: the model that answered, as shown."""

    reason: str
    detail: str = ""
    model: str | None = None


REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
"""OpenAI's reasoning models: they take ``max_completion_tokens`` (``max_tokens`` is
rejected) and only their default temperature."""


def is_reasoning_model(model: str) -> bool:
    return model.rsplit("/", 1)[-1].lower().startswith(REASONING_PREFIXES)


def is_openai(settings: Settings) -> bool:
    """True when requests go to OpenAI's own API (no base URL, or api.openai.com)."""
    base = settings.openai.base_url
    return not base or (urlparse(base).hostname or "").lower() == OPENAI_HOST


def retries_timeouts(settings: Settings) -> bool:
    """Whether a timed-out request is retried (``openai.retry_timeouts``; default: only on
    OpenAI's API)."""
    chosen = settings.openai.retry_timeouts
    return is_openai(settings) if chosen is None else chosen


def make_client(settings: Settings):
    """An ``openai.OpenAI`` client for the configured endpoint (key or base URL required).
    Its own retries are off: :func:`call_with_retries` decides what is retried."""
    import openai

    cfg = settings.openai
    if cfg.api_key is None and not cfg.base_url:
        raise ConfigurationError("no OPENAI_API_KEY or OPENAI_BASE_URL is set")
    key = cfg.api_key.get_secret_value() if cfg.api_key is not None else NO_KEY
    return openai.OpenAI(
        api_key=key, base_url=cfg.base_url or None, timeout=cfg.timeout, max_retries=0
    )


def _endpoint(settings: Settings | None) -> str:
    if settings is None:
        return "the endpoint"
    return settings.openai.base_url or OPENAI_HOST


def redact(text: str, settings: Settings | None) -> str:
    """``text`` with the API key (if any) replaced by ``***``."""
    if settings is not None and settings.openai.api_key is not None:
        key = settings.openai.api_key.get_secret_value()
        if key:
            text = text.replace(key, "***")
    return text


def _after(retries: int) -> str:
    return f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""


def context_advice(settings: Settings | None) -> str:
    """What to lower when a prompt does not fit the model's context window."""
    budget = settings.openai.context_tokens if settings is not None else None
    now = f" (now {budget})" if budget is not None else ""
    return (
        "ask with fewer sources (k), or lower RAG_ASSISTANT_OPENAI__CONTEXT_TOKENS"
        f"{now}, the token budget of the sources in the prompt"
    )


def timeout_error(settings: Settings | None, *, first_token: bool, retries: int = 0) -> LLMError:
    """The error for a request that got no reply in time, naming the setting to raise and,
    when it was not retried, why."""
    where = _endpoint(settings)
    timeout = settings.openai.timeout if settings is not None else None
    if first_token:
        head = (
            f"{where} sent no token within {timeout:g} s (a CPU server may still be reading "
            "the prompt); raise RAG_ASSISTANT_OPENAI__TIMEOUT, or ask with fewer sources (k)"
        )
    else:
        head = (
            f"{where} did not answer within {timeout:g} s; raise RAG_ASSISTANT_OPENAI__TIMEOUT"
            if timeout is not None
            else f"{where} did not answer in time"
        )
    if retries:
        return LLMTimeoutError(head + _after(retries))
    if settings is not None and not retries_timeouts(settings):
        head += (
            " (not retried: a local server keeps computing a request its client abandoned; "
            "RAG_ASSISTANT_OPENAI__RETRY_TIMEOUTS=true retries anyway)"
        )
    return LLMTimeoutError(head)


_CONTEXT_MESSAGE = re.compile(r"context (?:length|window)|too many tokens|maximum context", re.I)


def translate(exc: Exception, settings: Settings | None = None, *, retries: int = 0) -> LLMError:
    """The :class:`LLMError` for an ``openai`` exception (message free of the key);
    ``retries``: how many times the request was retried before it."""
    import openai

    where = _endpoint(settings)
    after = _after(retries)
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return LLMAuthenticationError(
            f"the API key was rejected by {where} (HTTP {exc.status_code}); check OPENAI_API_KEY"
        )
    if isinstance(exc, openai.RateLimitError):
        return LLMRateLimitError(
            f"{where} is rate limiting requests (HTTP 429){after}; try again later"
        )
    if isinstance(exc, openai.APITimeoutError):
        return timeout_error(settings, first_token=False, retries=retries)
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnavailableError(f"cannot reach {where}{after}")
    if isinstance(exc, openai.NotFoundError):
        model = settings.openai.model if settings is not None else "?"
        return LLMResponseError(
            f"{where} answered 404: is the model {model!r} served there "
            "(RAG_ASSISTANT_OPENAI__MODEL)?"
        )
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return LLMUnavailableError(f"{where} failed with HTTP {exc.status_code}{after}")
        detail = redact(str(getattr(exc, "message", "") or exc), settings)[:300]
        body = exc.body if isinstance(exc.body, dict) else {}
        if body.get("code") == "context_length_exceeded" or _CONTEXT_MESSAGE.search(detail):
            return LLMContextLengthError(
                f"{where} rejected the prompt as longer than the model's context window "
                f"({detail}); {context_advice(settings)}"
            )
        return LLMResponseError(f"{where} rejected the request (HTTP {exc.status_code}): {detail}")
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMResponseError(f"{where} sent a response that is not a valid completion")
    return LLMResponseError(redact(f"{where}: {type(exc).__name__}: {exc}", settings)[:300])


def _as_llm_error(exc: BaseException, settings: Settings | None, retries: int) -> LLMError | None:
    """The :class:`LLMError` for a failure of the endpoint; None for anything else (a bug,
    which keeps its traceback)."""
    import openai

    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, openai.OpenAIError):
        return translate(exc, settings, retries=retries)
    if isinstance(exc, json.JSONDecodeError):
        return _not_json(settings)
    return None


def _retryable(error: LLMError, settings: Settings | None) -> bool:
    if isinstance(error, LLMTimeoutError):
        return settings is not None and retries_timeouts(settings)
    return isinstance(error, (LLMRateLimitError, LLMUnavailableError))


def backoff(retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1, 2, ...): 0.5, 1, 2, ... up to 8."""
    return min(MAX_BACKOFF, 0.5 * 2 ** (retry - 1))


def call_with_retries(fn: Callable[[], T], settings: Settings | None = None) -> T:
    """Run one API call, retried as the module says (429, 5xx, failed connections; timeouts
    only on OpenAI's API or when asked); a failure becomes the :class:`LLMError` for it,
    the client's exception as its cause."""
    allowed = settings.openai.max_retries if settings is not None else 0
    retries = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            error = _as_llm_error(exc, settings, retries)
            if error is None:
                raise
            if retries >= allowed or not _retryable(error, settings):
                raise error from exc
        retries += 1
        log.info("retrying the request to %s (retry %d)", _endpoint(settings), retries)
        time.sleep(backoff(retries))


translated = call_with_retries
"""The name the embeddings client calls it by."""


def _not_json(settings: Settings | None) -> LLMResponseError:
    return LLMResponseError(
        f"{_endpoint(settings)} sent a response that is not a valid completion (not JSON)"
    )


class _BeforeText(Exception):
    """A streamed request failed before any text arrived (so it may be retried)."""

    def __init__(self, error: LLMError, cause: BaseException | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.cause = cause


_CHUNK, _END, _ERROR = "chunk", "end", "error"


class _Pump:
    """Reads one streamed request on a worker thread and hands its chunks over a queue, so
    the reader can give up on deadlines that the socket's single read timeout cannot express
    (the first token, a pause between tokens, the whole reply). Abandoned, the worker stops
    at its next chunk and closes the stream, which tells a server to stop generating."""

    def __init__(self, create: Callable[[], object]) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self.content_type = ""  # of the response, once it has started
        threading.Thread(
            target=self._run, args=(create,), daemon=True, name="rag-assistant-stream"
        ).start()

    def _run(self, create: Callable[[], object]) -> None:
        stream = None
        try:
            stream = create()
            headers = getattr(getattr(stream, "response", None), "headers", None) or {}
            self.content_type = headers.get("content-type", "")
            for chunk in stream:  # type: ignore[attr-defined]
                if self._stop.is_set():
                    break
                self._queue.put((_CHUNK, chunk))
            self._queue.put((_END, None))
        except Exception as exc:  # handed to the reader, which translates or re-raises it
            self._queue.put((_ERROR, exc))
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def get(self, seconds: float) -> tuple[str, object]:
        """The next item; raises ``queue.Empty`` after ``seconds``."""
        return self._queue.get(timeout=max(seconds, 0.0))

    def abandon(self) -> None:
        self._stop.set()


def _short_model_name(name: str) -> str:
    """A served model id as shown: a file path (llama.cpp serves its GGUF path) as its name."""
    if name.startswith("/") or name.lower().endswith((".gguf", ".bin")):
        return PurePosixPath(name).name
    return name


class ChatModel:
    """The configured chat model. ``stream`` yields text deltas, then one
    :class:`UsageReport`, then one :class:`Finish`; ``complete`` returns the whole reply."""

    def __init__(self, settings: Settings, *, client=None) -> None:
        self.settings = settings
        self.model = settings.openai.model
        self._client = client or make_client(settings)
        self._served: list[str] | None = None
        self._served_checked = False
        self._lock = threading.Lock()

    # --- which model answers -------------------------------------------------------------

    def served_models(self) -> list[str] | None:
        """The model ids the endpoint lists at ``GET /models`` (asked once); None when it
        does not say."""
        import openai

        with self._lock:
            if not self._served_checked:
                self._served_checked = True
                try:
                    page = self._client.with_options(timeout=MODELS_TIMEOUT).models.list()
                    self._served = [m.id for m in page.data]
                except (openai.OpenAIError, json.JSONDecodeError, AttributeError, TypeError):
                    log.info("%s does not list its models", _endpoint(self.settings))
            return self._served

    def served_notice(self) -> str | None:
        """A notice when the endpoint does not serve the configured model by that name."""
        served = self.served_models()
        if not served or self.model in served:
            return None
        shown = ", ".join(repr(_short_model_name(m)) for m in served[:5])
        if len(served) == 1:
            return (
                f"{_endpoint(self.settings)} serves no model named {self.model!r} "
                f"(RAG_ASSISTANT_OPENAI__MODEL); it answered with the one it serves, {shown}."
            )
        return (
            f"{_endpoint(self.settings)} serves no model named {self.model!r} "
            f"(RAG_ASSISTANT_OPENAI__MODEL); it serves {shown}."
        )

    def shown_model(self, reported: str | None = None) -> str:
        """The model to name as the one that answered: the one the endpoint serves when it
        serves only one and not the configured name (llama.cpp answers any name with its
        model), else the model the response named, else the configured one."""
        served = self.served_models()
        if served and self.model not in served and len(served) == 1:
            return _short_model_name(served[0])
        return reported or self.model

    # --- requests --------------------------------------------------------------------------

    def _params(
        self,
        messages: Sequence[dict],
        *,
        json_output: bool,
        temperature: float | None,
        max_tokens: int | None,
    ) -> dict:
        cfg = self.settings.openai
        params: dict = {"model": self.model, "messages": list(messages)}
        limit = max_tokens or cfg.max_output_tokens
        if is_reasoning_model(self.model):
            params["max_completion_tokens"] = limit
        else:
            params["max_tokens"] = limit
            params["temperature"] = cfg.temperature if temperature is None else temperature
        if json_output:
            params["response_format"] = {"type": "json_object"}
        return params

    def complete(
        self,
        messages: Sequence[dict],
        *,
        json_output: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """The whole reply (streamed under the hood unless ``openai.stream`` is off); a cut
        reply is returned as far as it got, with ``finish_reason`` "cut"."""
        parts: list[str] = []
        completion = Completion("")
        for item in self.stream(
            messages, json_output=json_output, temperature=temperature, max_tokens=max_tokens
        ):
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, UsageReport):
                completion.prompt_tokens = item.prompt_tokens
                completion.completion_tokens = item.completion_tokens
            else:
                completion.finish_reason, completion.model = item.reason, item.model
        completion.text = "".join(parts)
        return completion

    def stream(
        self,
        messages: Sequence[dict],
        *,
        json_output: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Iterator[str | UsageReport | Finish]:
        """Text deltas as they arrive, then a :class:`UsageReport` (estimated when the
        endpoint reports none), then a :class:`Finish`. Raises an :class:`LLMError` when the
        request fails before any text; a failure after some text ends in ``Finish("cut")``."""
        params = self._params(
            messages, json_output=json_output, temperature=temperature, max_tokens=max_tokens
        )
        if not self.settings.openai.stream:
            yield from self._unstreamed(params)
            return
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        started = time.monotonic()
        retries = 0
        while True:
            try:
                yield from self._stream_once(params, started, retries)
                return
            except _BeforeText as failure:
                allowed = self.settings.openai.max_retries
                if retries >= allowed or not _retryable(failure.error, self.settings):
                    raise failure.error from failure.cause
            retries += 1
            log.info("retrying the stream from %s (retry %d)", _endpoint(self.settings), retries)
            time.sleep(backoff(retries))

    def _unstreamed(self, params: dict) -> Iterator[str | UsageReport | Finish]:
        cfg = self.settings.openai
        response = call_with_retries(
            lambda: self._client.chat.completions.create(**params, timeout=cfg.timeout),
            self.settings,
        )
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMResponseError(
                f"{_endpoint(self.settings)} returned no completion choices"
            ) from exc
        if text:
            yield text
        yield self._usage(getattr(response, "usage", None), params, text)
        yield Finish(
            getattr(choice, "finish_reason", None) or "stop",
            model=self.shown_model(getattr(response, "model", None)),
        )

    def _usage(self, usage, params: dict, text: str) -> UsageReport:
        prompt = getattr(usage, "prompt_tokens", None)
        if prompt is not None:
            return UsageReport(prompt, getattr(usage, "completion_tokens", None) or 0)
        name = encoding_name_for_model(self.model)
        # A chat message costs its text plus a few tokens of its role and delimiters.
        sent = sum(count(str(m.get("content") or ""), name) + 4 for m in params["messages"])
        return UsageReport(sent + 2, count(text, name), estimated=True)

    def _stream_once(
        self, params: dict, started: float, retries: int
    ) -> Iterator[str | UsageReport | Finish]:
        cfg = self.settings.openai
        where = _endpoint(self.settings)
        # The socket waits longer than the reader, so the reader's deadlines decide.
        read_timeout = max(cfg.timeout, cfg.idle_timeout) + 5.0
        pump = _Pump(lambda: self._client.chat.completions.create(**params, timeout=read_timeout))
        attempt_started = time.monotonic()
        text: list[str] = []
        finish: str | None = None
        usage = None
        reported: str | None = None
        chunks = 0
        last = attempt_started
        end = started + cfg.total_timeout
        try:
            while True:
                if text:
                    deadline = min(last + cfg.idle_timeout, end)
                else:
                    deadline = min(attempt_started + cfg.timeout, end)
                try:
                    kind, item = pump.get(deadline - time.monotonic())
                except queue.Empty:
                    if not text:
                        raise _BeforeText(
                            timeout_error(self.settings, first_token=True, retries=retries)
                        ) from None
                    yield self._usage(usage, params, "".join(text))
                    yield Finish("cut", self._pause_detail(end), self.shown_model(reported))
                    return
                if kind == _ERROR:
                    assert isinstance(item, BaseException)
                    error = _as_llm_error(item, self.settings, retries)
                    if error is None:
                        raise item
                    if not text:
                        raise _BeforeText(error, item)
                    yield self._usage(usage, params, "".join(text))
                    yield Finish(
                        "cut",
                        f"the stream from {where} broke off: {error}",
                        self.shown_model(reported),
                    )
                    return
                if kind == _END:
                    break
                chunks += 1
                last = time.monotonic()
                reported = getattr(item, "model", None) or reported
                for choice in getattr(item, "choices", None) or []:
                    delta = getattr(getattr(choice, "delta", None), "content", None)
                    if delta:
                        text.append(delta)
                        yield delta
                    if getattr(choice, "finish_reason", None):
                        finish = choice.finish_reason
                chunk_usage = getattr(item, "usage", None)
                if getattr(chunk_usage, "prompt_tokens", None) is not None:
                    usage = chunk_usage
        finally:
            pump.abandon()
        if chunks == 0 and not pump.content_type.startswith("text/event-stream"):
            raise _BeforeText(
                LLMResponseError(f"{where} sent a response that is not a valid completion stream")
            )
        if chunks == 0:
            raise _BeforeText(
                LLMResponseError(
                    f"{where} ended the stream without sending anything. A llama.cpp server "
                    "does this when the prompt is longer than its context window: "
                    f"{context_advice(self.settings)}, or start the server with a larger "
                    "context (--n_ctx)"
                )
            )
        yield self._usage(usage, params, "".join(text))
        if finish is None and text:
            yield Finish(
                "cut",
                f"{where} ended the stream without saying the reply was complete",
                self.shown_model(reported),
            )
            return
        yield Finish(finish or "stop", model=self.shown_model(reported))

    def _pause_detail(self, end: float) -> str:
        cfg = self.settings.openai
        if time.monotonic() >= end - 0.05:
            return (
                f"the reply took longer than {cfg.total_timeout:g} s "
                "(RAG_ASSISTANT_OPENAI__TOTAL_TIMEOUT)"
            )
        return (
            f"{_endpoint(self.settings)} sent nothing for {cfg.idle_timeout:g} s "
            "(RAG_ASSISTANT_OPENAI__IDLE_TIMEOUT)"
        )
