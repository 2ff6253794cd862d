"""The errors a caller can act on: one root, one subclass per kind of failure.

The CLI and the UI turn any :class:`RagAssistantError` into a one-line message; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RagAssistantError(Exception):
    """Root of every error rag-assistant raises on purpose."""


# --- input at the boundary -------------------------------------------------------------


class InputError(RagAssistantError, ValueError):
    """Something the user passed in cannot be used as it is."""


class EmptyQuestionError(InputError):
    """The question is empty or only whitespace."""


class QuestionTooLongError(InputError):
    """The question does not fit the token budget."""


class InvalidParameterError(InputError):
    """A parameter of a call is out of range (``k`` below 1, say)."""


class SourceError(InputError):
    """A corpus file or folder cannot be ingested."""


class MissingPathError(SourceError):
    """A path given to ingest does not exist."""


class EmptySourceError(SourceError):
    """A folder holds no file of a supported kind, or a file is empty."""


class UnsupportedFileError(SourceError):
    """A file is of a kind ingest does not read."""


class EncodingError(SourceError):
    """A file is not valid UTF-8 text."""


class NoEntriesError(SourceError):
    """A file was read but holds no recognizable title/abstract entries."""


class MalformedRecordError(SourceError):
    """A record (a JSON line, a CSV row) is broken; the message names file and line."""


class UploadTooLargeError(SourceError):
    """A file or record is larger than the configured bound (compressed files: what they
    expand to)."""


class UnreadableSourceError(SourceError):
    """A corpus file exists but cannot be read (permissions)."""


# --- the index ---------------------------------------------------------------------------


class StorageError(RagAssistantError):
    """Base for problems with the index directory and the stores in it."""


class IndexBusyError(StorageError):
    """Another process is writing to the same index."""


class IndexMismatchError(StorageError):
    """The index was built with another embedding, tokenizer or chunking."""


class IndexCorruptError(StorageError):
    """A part of the index is missing or damaged; the message names the part."""


class IndexEmptyError(StorageError):
    """The index holds no papers and may not ingest the bundled corpus by itself."""


class VectorStoreError(StorageError):
    """The Chroma store (embedded or server) could not be reached or failed."""


class IndexUnreadableError(StorageError):
    """A part of the index exists but cannot be opened: not damaged, so nothing is changed
    or deleted; the message says why and what to do."""


class IndexPermissionError(IndexUnreadableError):
    """Permission denied on a part of the index (EACCES, EPERM)."""


class ReadOnlyIndexError(IndexUnreadableError):
    """The index directory is on a read-only file system (EROFS)."""


class HomeNotADirectoryError(IndexUnreadableError):
    """The index directory (``RAG_ASSISTANT_HOME``) is a file, or lies under one."""


class DiskFullError(StorageError):
    """The disk (or quota) holding the index is full (ENOSPC, EDQUOT); what was already
    stored is kept, and trying again once there is space completes the work."""


class RebuildShrinkError(StorageError):
    """A rebuild would hold fewer papers than the index (missing source files); nothing was
    changed. ``--allow-shrink`` (``allow_shrink=True``) rebuilds anyway."""


# --- the language model -----------------------------------------------------------------


class LLMError(RagAssistantError):
    """The language model endpoint failed; the message never contains the key."""


class LLMAuthenticationError(LLMError):
    """The API key was rejected (HTTP 401/403)."""


class LLMRateLimitError(LLMError):
    """The endpoint kept answering 429 after the bounded retries."""


class LLMUnavailableError(LLMError):
    """The endpoint could not be reached or kept failing (5xx) after the bounded retries."""


class LLMTimeoutError(LLMError):
    """The endpoint did not answer within the configured time."""


class LLMResponseError(LLMError):
    """The endpoint answered with something that is not a usable completion."""


class LLMContextLengthError(LLMResponseError):
    """The prompt is longer than the model's context window; the message says what to lower."""


# --- configuration --------------------------------------------------------------------


class ConfigurationError(RagAssistantError):
    """A setting is invalid or a needed one is missing."""


class PromptTemplateError(ConfigurationError):
    """A prompt template is missing or its variables do not match what the code fills in."""


class PortInUseError(ConfigurationError):
    """The port the UI was asked to listen on is taken (by another ``rag-assistant ui``)."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is in use")
        self.port = port


__all__ = [name for name in dir() if name.endswith("Error")]
