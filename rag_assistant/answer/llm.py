"""The OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp via OPENAI_BASE_URL),
through the official ``openai`` client.

Failures become the errors of :mod:`rag_assistant.errors` with messages that never contain
the API key: 401/403 -> :class:`LLMAuthenticationError`; 429, 5xx, timeouts and refused
connections are retried by the client (``openai.max_retries``, exponential backoff) and then
raise :class:`LLMRateLimitError`, :class:`LLMUnavailableError` or :class:`LLMTimeoutError`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..errors import (
    ConfigurationError,
    LLMAuthenticationError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnavailableError,
)

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# A local server (Ollama, llama.cpp) needs no key, but the client insists on one.
NO_KEY = "no-key-needed"


@dataclass
class Completion:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


@dataclass
class UsageReport:
    """An item of :meth:`ChatModel.stream`: the usage the endpoint reported."""

    prompt_tokens: int
    completion_tokens: int


@dataclass
class Finish:
    """An item of :meth:`ChatModel.stream`: why the model stopped (``"length"``: it hit the
    token limit and the answer is cut short)."""

    reason: str


REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
"""OpenAI's reasoning models: they take ``max_completion_tokens`` (``max_tokens`` is
rejected) and only their default temperature."""


def is_reasoning_model(model: str) -> bool:
    return model.rsplit("/", 1)[-1].lower().startswith(REASONING_PREFIXES)


def make_client(settings: Settings):
    """An ``openai.OpenAI`` client for the configured endpoint (key or base URL required)."""
    import openai

    cfg = settings.openai
    if cfg.api_key is None and not cfg.base_url:
        raise ConfigurationError("no OPENAI_API_KEY or OPENAI_BASE_URL is set")
    key = cfg.api_key.get_secret_value() if cfg.api_key is not None else NO_KEY
    return openai.OpenAI(
        api_key=key,
        base_url=cfg.base_url or None,
        timeout=cfg.timeout,
        max_retries=cfg.max_retries,
    )


def _endpoint(settings: Settings | None) -> str:
    if settings is None:
        return "the endpoint"
    return settings.openai.base_url or "api.openai.com"


def redact(text: str, settings: Settings | None) -> str:
    """``text`` with the API key (if any) replaced by ``***``."""
    if settings is not None and settings.openai.api_key is not None:
        key = settings.openai.api_key.get_secret_value()
        if key:
            text = text.replace(key, "***")
    return text


def translate(exc: Exception, settings: Settings | None = None) -> LLMError:
    """The :class:`LLMError` for an ``openai`` exception (message free of the key)."""
    import openai

    where = _endpoint(settings)
    retries = settings.openai.max_retries if settings is not None else 0
    timeout = settings.openai.timeout if settings is not None else None
    after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return LLMAuthenticationError(
            f"the API key was rejected by {where} (HTTP {exc.status_code}); check OPENAI_API_KEY"
        )
    if isinstance(exc, openai.RateLimitError):
        return LLMRateLimitError(
            f"{where} is rate limiting requests (HTTP 429){after}; try again later"
        )
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeoutError(f"{where} did not answer within {timeout} s{after}")
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnavailableError(f"cannot reach {where}{after}")
    if isinstance(exc, openai.NotFoundError):
        model = settings.openai.model if settings is not None else "?"
        return LLMResponseError(f"{where} answered 404: is the model {model!r} served there?")
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return LLMUnavailableError(f"{where} failed with HTTP {exc.status_code}{after}")
        detail = redact(str(getattr(exc, "message", "") or exc), settings)[:300]
        return LLMResponseError(f"{where} rejected the request (HTTP {exc.status_code}): {detail}")
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMResponseError(f"{where} sent a response that is not a valid completion")
    return LLMResponseError(redact(f"{where}: {type(exc).__name__}: {exc}", settings)[:300])


def translated(fn: Callable[[], T], settings: Settings | None = None) -> T:
    """Run one API call (the ``openai`` client does the retrying, ``max_retries`` times);
    a failure becomes the :class:`LLMError` for it, the client's exception as its cause."""
    import openai

    try:
        return fn()
    except openai.OpenAIError as exc:
        raise translate(exc, settings) from exc
    except json.JSONDecodeError as exc:
        raise _not_json(settings) from exc


def _not_json(settings: Settings | None) -> LLMResponseError:
    return LLMResponseError(
        f"{_endpoint(settings)} sent a response that is not a valid completion (not JSON)"
    )


class ChatModel:
    """The configured chat model. ``complete`` returns the whole answer, ``stream`` yields
    text deltas then, when the endpoint reports it, one :class:`UsageReport`."""

    def __init__(self, settings: Settings, *, client=None) -> None:
        self.settings = settings
        self.model = settings.openai.model
        self._client = client or make_client(settings)

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
        params = self._params(
            messages, json_output=json_output, temperature=temperature, max_tokens=max_tokens
        )
        response = translated(lambda: self._client.chat.completions.create(**params), self.settings)
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMResponseError(
                f"{_endpoint(self.settings)} returned no completion choices"
            ) from exc
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            finish_reason=getattr(choice, "finish_reason", None),
        )

    def stream(
        self,
        messages: Sequence[dict],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Iterator[str | UsageReport | Finish]:
        """Text deltas as they arrive, then a :class:`Finish` when the endpoint says why it
        stopped and a :class:`UsageReport` when it reports usage. The whole stream is bounded
        by ``openai.timeout * (max_retries + 1)`` seconds, so a trickling endpoint ends too."""
        import openai

        params = self._params(
            messages, json_output=False, temperature=temperature, max_tokens=max_tokens
        )
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        cfg = self.settings.openai
        deadline = time.monotonic() + cfg.timeout * (cfg.max_retries + 1)
        stream = translated(lambda: self._client.chat.completions.create(**params), self.settings)
        chunks = 0
        try:
            for chunk in stream:
                chunks += 1
                if time.monotonic() > deadline:
                    raise LLMTimeoutError(
                        f"{_endpoint(self.settings)} kept streaming past "
                        f"{cfg.timeout * (cfg.max_retries + 1):.0f} s; the answer was cut off"
                    )
                for choice in getattr(chunk, "choices", None) or []:
                    delta = getattr(choice.delta, "content", None)
                    if delta:
                        yield delta
                    if getattr(choice, "finish_reason", None):
                        yield Finish(choice.finish_reason)
                usage = getattr(chunk, "usage", None)
                if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
                    yield UsageReport(usage.prompt_tokens, usage.completion_tokens or 0)
        except openai.OpenAIError as exc:
            raise translate(exc, self.settings) from exc
        except json.JSONDecodeError as exc:
            raise _not_json(self.settings) from exc
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if chunks == 0:
            raise LLMResponseError(
                f"{_endpoint(self.settings)} sent an empty or malformed stream (no events)"
            )
