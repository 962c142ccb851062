"""A proposer that asks a chat model: OpenAI's, or any server that speaks its protocol.

[`ChatGPTProposer`][ChatGPTProposer] puts one question per class to ``chat.completions`` ("What are
the uncommon backgrounds that a fox can appear in?") through the official ``openai`` client, so any
OpenAI-compatible server works: OpenAI, vLLM, Ollama, llama.cpp's server, ... (and Azure OpenAI
through ``client=openai.AzureOpenAI(...)``).
Needs the ``openai`` extra: ``pip install "failmodes[openai]"``.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import re
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from failmodes._imports import require
from failmodes._urls import url_credentials as _url_credentials
from failmodes.attributes import ATTRIBUTES, get_attribute, with_article
from failmodes.interfaces import BackgroundProposer
from failmodes.proposers.merge import PREPOSITION_PHRASES, PREPOSITIONS, merge_values

__all__ = ["DEFAULT_MODEL", "ChatGPTProposer", "ProposalError"]

logger = logging.getLogger("failmodes")

DEFAULT_MODEL = "gpt-4.1-mini"
"""The model [`ChatGPTProposer`][ChatGPTProposer] asks by default: cheap, and it follows JSON
schemas."""

# Examples shown to the model, per attribute, of values phrased the way prompts need them.
_EXAMPLES = {
    "background": ("in a desert", "on a frozen lake", "in a dark cave"),
    "color": ("red", "bright purple", "black and white"),
    "size": ("tiny", "giant", "pocket-sized"),
}

_SCHEMA = {
    "name": "uncommon_values",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {"values": {"type": "array", "items": {"type": "string"}}},
        "required": ["values"],
        "additionalProperties": False,
    },
}


class ProposalError(RuntimeError):
    """A proposer could not get the values of one class (no answer, a refusal, a bad answer).

    The answers received for other classes before the failure are not lost: they are in
    ``partial``, and a proposer that caches answers (as [`ChatGPTProposer`][ChatGPTProposer] does)
    asks only for the missing classes when called again.

    Args:
        message: what went wrong, for the user.
        class_name: the class whose values could not be had.
        attribute: the attribute asked about.
        partial: ``{class_name: [value, ...]}`` for the classes of the call already answered;
            ``None`` for none.

    Attributes:
        class_name: the class whose values could not be had.
        attribute: the attribute asked about.
        partial: ``{class_name: [value, ...]}`` for the classes of the call already answered.

    Examples:
        >>> from failmodes.proposers import ProposalError
        >>> try:
        ...     raise ProposalError("the model refused", "owl", partial={"fox": ["in a desert"]})
        ... except ProposalError as err:
        ...     print(err, err.class_name, err.partial)
        the model refused owl {'fox': ['in a desert']}
    """

    def __init__(
        self,
        message: str,
        class_name: str = "",
        attribute: str = "background",
        partial: Mapping[str, list[str]] | None = None,
    ):
        super().__init__(message)
        self.class_name = class_name
        self.attribute = attribute
        self.partial = dict(partial or {})


class ChatGPTProposer(BackgroundProposer):
    """Asks a chat model, per class, for uncommon values of the spurious attribute.

    For each class, the attribute's question (``"What are the uncommon backgrounds that a
    {class_name} can appear in?"``; the ``color`` and ``size`` questions of
    [`failmodes.attributes.ATTRIBUTES`][failmodes.attributes.ATTRIBUTES], or your own through
    ``templates``) is sent to
    ``chat.completions`` with instructions to answer phrases that read next to the class name:
    after it for backgrounds ("in a desert"), before it for colors and sizes ("red", "tiny"), so
    that [`failmodes.attributes.prompt`][failmodes.attributes.prompt] makes natural prompts from
    them.

    The answer is requested as JSON following a strict JSON schema (``{"values": [...]}``). A
    server that rejects ``response_format`` (an HTTP 400 or 422 about it) is asked again
    without it, as is every server when ``schema=False``; such answers are parsed tolerantly: a
    JSON object or list, JSON in a ``` fence, or a numbered or bulleted list. An answer that
    is not JSON, lists nothing (no list markers) and opens the way refusals do ("Sorry", "I'm
    sorry", "I can't", "I cannot", "As an AI", "Unfortunately, I", ...: the openings of
    ``_REFUSAL_OPENINGS``) is the model refusing, as is an answer's ``refusal`` field: a
    [`ProposalError`][ProposalError] names the class. Each value is then
    tidied (list markers, quotes, explanations after a colon or dash, a repeated class name, a
    capitalised first word dropped) and, for backgrounds only, a bare place gets a preposition:
    "desert" becomes "in the desert" ("the" rather than "a", because it also reads right for
    "snow", "water" or "grass"); values that start with a preposition ("on a lake", "next to a
    road"), a verb in -ing ("floating in space") or words such as "underwater" are kept as they
    are. Redundant values are merged with
    [`failmodes.proposers.merge_values`][failmodes.proposers.merge_values].

    Answers are cached in ``answers_``, so calling [`propose`][propose] again asks only for
    classes not answered yet, in particular after a [`ProposalError`][ProposalError]. Clear the
    cache (``proposer.answers_.clear()``) to ask again.

    The classes are asked concurrently, at most ``concurrency`` requests in flight through one
    client; the first request goes alone, so that a server that rejects JSON schemas (or a wrong
    model name or key) is found out by one request, not by ``concurrency`` of them. When a class
    fails, no further class is asked, the requests in flight are waited for and their answers
    kept. A 429 (rate limit) that outlasts the client's retries slows the pool down rather than
    failing it: the limit on requests in flight is halved (at most once per round of requests),
    no request is sent for the time the answer's ``retry-after-ms`` or ``retry-after`` header
    asks (else 0.5 s, doubled for each pause of the class, at most 8 s), and the class goes back
    in the queue; the limit then grows by one after as many answers in a row as it allows, up to
    ``concurrency``. A class rate limited after 3 pauses fails. Each change of the limit is
    logged at INFO. ``concurrency=1`` asks one class after another, in order, and a 429 that
    outlasts the client's retries fails the class.

    The API key is never logged, shown in ``repr``, nor put in error messages or results; nor
    are the other secrets the proposer may send: ``extra_headers`` and ``extra_query`` values
    of ``request_options``, and the user info of a URL (``http://user:secret@host/v1``, or
    ``http://secret@host/v1``), shown as ``***``. The ``openai`` client and its HTTP stack
    (``httpx``, ``httpcore``) log request URLs: while the proposer talks, the records of their
    loggers (every logger whose name starts with ``openai``, ``httpx`` or ``httpcore``) have these
    secrets replaced by ``***``.

    Args:
        model: the model name, as the server knows it (``"gpt-4.1-mini"``, ``"llama3.1"``, ...).
        client: an ``openai.OpenAI`` client (or one with the same ``chat.completions.create``)
            to use instead of building one; ``base_url``, ``api_key``, ``max_retries`` and
            ``timeout`` are then ignored.
        base_url: the server's URL, e.g. ``"http://localhost:8000/v1"`` for vLLM or
            ``"http://localhost:11434/v1"`` for Ollama; ``None`` uses ``OPENAI_BASE_URL`` or
            OpenAI's. The secret of its user info, a password (``http://user:secret@host/v1``)
            or a user name alone (``http://secret@host/v1``), is kept as the key is.
        api_key: the API key; ``None`` uses ``OPENAI_API_KEY``. With a ``base_url`` and no key
            anywhere, a placeholder key is sent, as local servers need none. Surrounding
            whitespace (the newline of a key read from a file) is stripped, from ``api_key`` and
            ``OPENAI_API_KEY`` alike; the key left must be printable ASCII without whitespace,
            as API keys are, or [`propose`][propose] raises a ValueError before any request
            (naming where the key came from, never showing it).
        max_retries: retries of the ``openai`` client on connection errors, timeouts, 408, 409,
            429 and 5xx answers (it waits as the server's ``retry-after`` headers say, or backs
            off exponentially).
        timeout: seconds to wait for an answer, per try (``None``: no limit).
        temperature: the sampling temperature; ``0.0`` asks for the most likely answer. ``None``
            sends none (for models that only accept their own default).
        seed: a seed sent to the server for repeatable sampling; ``None`` sends none. Servers may
            ignore it; cache or save the answers (``answers_``) when they must not change.
        max_values: ask for at most this many values per class, and keep at most this many;
            ``None``: as many as the model gives.
        templates: ``{attribute: question}`` adding or replacing questions, each with a
            ``{class_name}`` field. Values of an attribute that
            [`failmodes.attributes.get_attribute`][failmodes.attributes.get_attribute] does not know
            are asked to read after the class name.
        schema: request JSON that follows a JSON schema (``response_format``); ``False`` asks in
            plain text, for servers that neither support nor reject it.
        request_options: further keyword arguments of ``chat.completions.create``
            (``max_tokens``, ``extra_body``, ...); they override the ones above.
        concurrency: the most requests in flight at once (a positive integer); it does not
            change the answers, so it is not part of [`cache_key`][cache_key]. The requests
            are sent from a pool of threads: a ``client`` of your own must be thread-safe
            (``openai.OpenAI`` is), or use ``concurrency=1``.

    Attributes:
        answers_: ``{(attribute, class_name): [value, ...]}``, every answer received, merged and
            tidied (before the ``max_values`` cut). Set by [`propose`][propose].

    Examples:
        >>> from failmodes.testing.openai_server import OpenAIServer
        >>> answer = '{"values": ["in a desert", "Desert", "on a frozen lake", "snow"]}'
        >>> with OpenAIServer(answer) as server:
        ...     proposer = ChatGPTProposer(base_url=server.base_url, api_key="sk-test")
        ...     proposer.propose(["fox"])
        {'fox': ['in a desert', 'on a frozen lake', 'in the snow']}

        Nothing connects until [`propose`][propose] is called:

        >>> ChatGPTProposer("Qwen/Qwen2.5-7B-Instruct", base_url="http://localhost:8000/v1")
        ChatGPTProposer('Qwen/Qwen2.5-7B-Instruct', base_url='http://localhost:8000/v1')

        With OpenAI's servers (``OPENAI_API_KEY`` set), or a local vLLM server:

        ```python
        ChatGPTProposer().propose(["fox", "owl"])
        # {'fox': ['in a desert', 'on a frozen lake', ...], 'owl': [...]}
        ChatGPTProposer("Qwen/Qwen2.5-7B-Instruct", base_url="http://localhost:8000/v1").propose(
            ["fox", "owl"], attribute="color"
        )
        ```
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        client: Any = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_retries: int = 2,
        timeout: float | None = 60.0,
        temperature: float | None = 0.0,
        seed: int | None = None,
        max_values: int | None = None,
        templates: Mapping[str, str] | None = None,
        schema: bool = True,
        request_options: Mapping[str, Any] | None = None,
        concurrency: int = 4,
    ):
        self.model = model
        self.client = client
        self.base_url = base_url
        self.api_key = api_key
        self.max_retries = max_retries
        self.timeout = timeout
        self.temperature = temperature
        self.seed = seed
        self.max_values = max_values
        self.templates = templates
        self.schema = schema
        self.request_options = request_options
        self.concurrency = concurrency

    def cache_key(self) -> dict[str, Any]:
        """What the answers depend on, for [`failmodes.cache`][failmodes.cache] (never the API key).

        The server is named by its URL (``base_url``, the client's, ``OPENAI_BASE_URL`` or
        OpenAI's; a password in it shown as ``***``); the key, timeouts, retries and
        ``concurrency`` do not change an answer.

        Returns:
            JSON-ready settings: the class, ``model``, the server, ``temperature``, ``seed``,
            ``max_values``, ``templates``, ``schema`` and ``request_options`` (header values
            left out).
        """
        if self.client is not None:
            server = str(getattr(self.client, "base_url", type(self.client).__name__))
        else:
            server = self.base_url or os.environ.get("OPENAI_BASE_URL") or "api.openai.com"
        return {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "model": self.model,
            "server": _url_credentials(server)[0],
            "temperature": self.temperature,
            "seed": self.seed,
            "max_values": self.max_values,
            "templates": self.templates,
            "schema": self.schema,
            "request_options": _without_header_values(self.request_options),
        }

    def __repr__(self) -> str:
        shown = [repr(self.model)]
        parameters = list(inspect.signature(type(self).__init__).parameters.values())[2:]
        for parameter in parameters:
            value = getattr(self, parameter.name)
            if value is parameter.default or (
                isinstance(value, int | float | str | bool) and value == parameter.default
            ):
                continue
            if parameter.name == "api_key":
                shown.append("api_key='***'")
            elif parameter.name == "base_url":
                shown.append(f"base_url={_url_credentials(str(value))[0]!r}")
            elif parameter.name == "client":
                shown.append(f"client=<{type(value).__name__}>")
            elif parameter.name == "request_options":  # may hold headers: show names only
                shown.append(f"request_options=<{', '.join(map(str, value))}>")
            else:
                shown.append(f"{parameter.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def propose(
        self, class_names: Sequence[str], *, attribute: str = "background"
    ) -> dict[str, list[str]]:
        """Ask the model about each class not answered yet; return every class's values.

        Args:
            class_names: the classes to ask about; a class named twice is asked once.
            attribute: the spurious attribute: ``"background"``, ``"color"``, ``"size"``, or one
                given in ``templates``.

        Returns:
            ``{class_name: [value, ...]}`` with exactly the classes in ``class_names``, in order,
            each with at least one value.

        Raises:
            ProposalError: for a class whose request failed after the client's retries (or, for
                a 429, after 3 pauses of the pool), whose answer was empty, malformed or held no
                value, or that the model refused; the first such class in ``class_names`` order.
                No class is asked after a failure; the requests already in flight are waited
                for. It names the class and keeps every answer received in ``partial`` (they
                are also cached in ``answers_``).
            ValueError: if ``attribute`` has no question, a template lacks ``{class_name}``, a
                class name is blank, ``max_values`` or ``concurrency`` is not positive, or the
                API key (``api_key`` or ``OPENAI_API_KEY``) is not printable ASCII or holds
                whitespace inside; before any request.
            TypeError: if ``class_names`` is a single string.
            ImportError: if the ``openai`` package is not installed (it names the extra).
        """
        if isinstance(class_names, str):
            raise TypeError(f"class_names must be a list of names, not a string ({class_names!r})")
        names = list(class_names)
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"class names must be non-empty strings, got {name!r}")
        self._check_settings()
        attribute_name, question = self._question(attribute)
        if not hasattr(self, "answers_"):
            self.answers_: dict[tuple[str, str], list[str]] = {}
        missing = [n for n in dict.fromkeys(names) if (attribute_name, n) not in self.answers_]
        if missing:
            self._ask_all(missing, names, attribute_name, question)
        return {n: self.answers_[(attribute_name, n)][: self.max_values] for n in names}

    # -- asking ----------------------------------------------------------------------------------

    def _question(self, attribute: str) -> tuple[str, str]:
        """The attribute's canonical name and question template."""
        name = get_attribute(attribute).name
        templates = dict(self.templates or {})
        question = templates.get(attribute, templates.get(name))
        if question is None and name in ATTRIBUTES:
            question = ATTRIBUTES[name].question
        if question is None:
            known = sorted({*ATTRIBUTES, *templates})
            raise ValueError(
                f"ChatGPTProposer has no question for attribute {attribute!r}; known attributes: "
                f"{known}. Give one with templates={{{name!r}: 'What are the uncommon {name}s "
                "that a {class_name} can have?'}"
            )
        if not isinstance(question, str) or "{class_name}" not in question:
            raise ValueError(
                f"the question for attribute {name!r} must be a string with a {{class_name}} "
                f"field, got {question!r}"
            )
        return name, question

    def _check_settings(self) -> None:
        """Raise ValueError for a ``max_values`` or ``concurrency`` that is not positive."""
        if self.max_values is not None and not _positive_int(self.max_values):
            raise ValueError(
                f"max_values must be a positive integer or None, not {self.max_values!r}"
            )
        if not _positive_int(self.concurrency):
            raise ValueError(
                "concurrency must be a positive integer (the most requests in flight at once), "
                f"not {self.concurrency!r}"
            )

    def _ask_all(self, missing: list[str], names: list[str], attribute: str, question: str) -> None:
        """Ask about the classes of ``missing``, caching each answer as it comes."""
        openai = require("openai", feature="ChatGPTProposer")
        client = self.client if self.client is not None else self._make_client(openai)
        talk = _Talk(openai, client, attribute, question, self._secrets(client), bool(self.schema))
        with _scrubbed_logs(talk.secrets):
            try:
                failures = self._ask_pooled(missing, talk)
            finally:
                if self.client is None:
                    client.close()
        if failures:
            name = next(n for n in missing if n in failures)
            # not chained: the original error's text may carry request data (a server that
            # echoes the key); its type and redacted text are in the message
            raise self._proposal_error(name, failures[name], names, talk) from None

    def _ask_pooled(self, missing: list[str], talk: _Talk) -> dict[str, _Failure]:
        """Ask with at most ``concurrency`` requests in flight; the classes that failed."""
        pool = _Pool(missing, self.concurrency)
        executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="ChatGPTProposer")
        try:
            while pool.busy():
                for name in pool.to_start():
                    pool.running[executor.submit(self._ask, talk, name)] = (name, pool.cuts)
                for future in pool.wait():
                    self._collect(pool, future, talk.attribute)
        except BaseException:  # an interrupt, or an error that is no _Failure: stop at once
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        executor.shutdown()
        return pool.failures

    def _collect(self, pool: _Pool, future: Future, attribute: str) -> None:
        """Take one finished request's answer, failure or rate limit (in the calling thread)."""
        name, sent = pool.running.pop(future)
        pool.opened = True
        try:
            values = future.result()
        except _RateLimited as limited:
            if not pool.requeue(name, sent, limited.pause):
                pool.failures[name] = limited.after(pool.pauses[name])
        except _Failure as failure:
            pool.failures[name] = failure
        else:
            self.answers_[(attribute, name)] = values
            pool.answered()

    def _proposal_error(
        self, name: str, failure: _Failure, names: list[str], talk: _Talk
    ) -> ProposalError:
        """The error for a failed class, with every answer received in ``partial``."""
        attribute = talk.attribute
        partial = {
            n: self.answers_[(attribute, n)][: self.max_values]
            for n in dict.fromkeys(names)
            if (attribute, n) in self.answers_
        }
        kept = (
            f"; the answers for {sorted(partial)} are kept (error.partial, proposer.answers_), "
            "and calling propose again asks only for the missing classes"
            if partial
            else ""
        )
        message = (
            f"ChatGPTProposer could not get the {attribute} values of class {name!r} "
            f"from model {self.model!r}: {failure.reason}{kept}"
        )
        return ProposalError(
            _redact(message, talk.secrets), class_name=name, attribute=attribute, partial=partial
        )

    def _ask(self, talk: _Talk, name: str) -> list[str]:
        """One class's values (on one of the pool's threads)."""
        spec = get_attribute(talk.attribute)
        messages = [
            {"role": "system", "content": _instructions(talk.attribute, self.max_values)},
            {"role": "user", "content": _format_question(talk.question, name)},
        ]
        logger.debug(
            "ChatGPTProposer asks %s about class %r%s: %s",
            self.model,
            name,
            " (JSON schema)" if talk.use_schema else "",
            messages[1]["content"],
        )
        completion, strict = self._complete(talk, messages)
        content, cut = _content(completion)
        values = _parse(_redact(content, talk.secrets), strict=strict, cut=cut)
        values = merge_values(
            v
            for v in (_tidy(raw, name, talk.attribute, spec.value_before_class) for raw in values)
            if v
        )
        if not values:
            raise _Failure(f"the answer holds no values: {_shorten(content)!r}")
        logger.debug("ChatGPTProposer got %d values for class %r", len(values), name)
        return values

    def _complete(self, talk: _Talk, messages: list[dict[str, str]]) -> tuple[Any, bool]:
        """The server's completion, and whether it was asked for with the JSON schema."""
        openai, use_schema = talk.openai, talk.use_schema
        try:
            try:
                return self._create(talk.client, messages, use_schema), use_schema
            except (openai.BadRequestError, openai.UnprocessableEntityError) as err:
                if not (use_schema and _about_response_format(err)):
                    raise
                if talk.use_schema:  # the first request to learn it; later ones ask plainly
                    talk.use_schema = False
                    logger.info(
                        "the server rejects JSON schemas (%s); ChatGPTProposer asks in plain text",
                        _redact(_shorten(str(err)), talk.secrets),
                    )
                return self._create(talk.client, messages, False), False
        except openai.RateLimitError as err:
            raise _RateLimited(_request_failed(talk.client, err), _retry_after(err)) from err
        except openai.APIError as err:
            raise _Failure(_request_failed(talk.client, err)) from err
        except json.JSONDecodeError as err:  # a 200 answer whose body is not JSON
            raise _Failure(f"the server's answer is not JSON ({err})") from err

    def _create(self, client: Any, messages: list[dict[str, str]], use_schema: bool) -> Any:
        options: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.seed is not None:
            options["seed"] = self.seed
        if use_schema:
            options["response_format"] = {"type": "json_schema", "json_schema": _SCHEMA}
        options.update(self.request_options or {})
        return client.chat.completions.create(**options)

    def _make_client(self, openai: Any) -> Any:
        api_key = self._api_key()
        options: dict[str, Any] = {"max_retries": self.max_retries, "timeout": self.timeout}
        if api_key is not None:
            options["api_key"] = api_key
        if self.base_url is not None:
            options["base_url"] = self.base_url
        return openai.OpenAI(**options)

    def _api_key(self) -> str | None:
        """The key to build the client with (``None``: let the client say it has none).

        ``api_key``, else ``OPENAI_API_KEY``, without surrounding whitespace; else, for a local
        server (a ``base_url``), a placeholder: local servers need none, but the client insists.

        Raises:
            ValueError: if the key is not printable ASCII or holds whitespace inside.
        """
        if self.api_key is not None:
            return _checked_key(self.api_key.strip(), "api_key")
        from_env = os.environ.get("OPENAI_API_KEY")
        if from_env:
            return _checked_key(from_env.strip(), "OPENAI_API_KEY")
        if self.base_url or os.environ.get("OPENAI_BASE_URL"):
            return "no-key"
        return None

    def _secrets(self, client: Any) -> list[str]:
        """Every secret this proposer may send, as it may show, to scrub from messages and logs.

        The keys, the ``extra_headers`` and ``extra_query`` values, the user info of the URL;
        each as it is, percent-decoded and percent-encoded (as in a logged URL).
        """
        keys = [self.api_key, os.environ.get("OPENAI_API_KEY"), getattr(client, "api_key", None)]
        urls = [self.base_url, os.environ.get("OPENAI_BASE_URL"), getattr(client, "base_url", None)]
        keys += [_url_credentials(str(url))[1] for url in urls if url is not None]
        options = self.request_options if isinstance(self.request_options, Mapping) else {}
        for sent in ("extra_headers", "extra_query"):
            if isinstance(options.get(sent), Mapping):
                keys += [str(v) for v in options[sent].values() if v is not None]
        found = {f for k in keys if isinstance(k, str) for f in _shown_forms(k) if len(f) >= 4}
        return sorted(found, key=len, reverse=True)  # a secret inside another goes after it


class _Failure(Exception):
    """One class's request or answer failed; ``reason`` says how."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _RateLimited(_Failure):
    """A class's request still answered 429 after the client's retries.

    ``pause`` is the wait its ``retry-after-ms`` or ``retry-after`` header asks for, if any.
    """

    def __init__(self, reason: str, pause: float | None):
        super().__init__(reason)
        self.pause = pause

    def after(self, pauses: int) -> _Failure:
        """The failure of a class still rate limited after ``pauses`` pauses of the pool."""
        return _Failure(
            f"{self.reason}; still rate limited after {pauses} pauses" if pauses else self.reason
        )


_MAX_PAUSES = 3  # a class rate limited after this many pauses of the pool fails
_FIRST_PAUSE_S = 0.5  # the pause after a 429 without retry-after, doubled for each pause
_LONGEST_BACKOFF_S = 8.0
_LONGEST_PAUSE_S = 60.0  # a retry-after header asking for more is cut to this


@dataclass
class _Talk:
    """What every request of one ``propose`` call shares.

    ``use_schema`` is turned off, for the requests not yet sent, by the first request that
    learns the server rejects JSON schemas (a plain attribute write: the threads only ever set
    it to False).
    """

    openai: Any
    client: Any
    attribute: str
    question: str
    secrets: list[str]
    use_schema: bool


class _Pool:
    """The schedule of one ``propose`` call, kept by the calling thread.

    Classes wait in ``waiting``; ``running`` maps each request in flight to its class and the
    number of cuts of the limit when it was sent. Until one request has finished
    (``opened``) only one flies. The limit on requests in flight is additive-increase,
    multiplicative-decrease: halved by a 429 (once per round: a request sent before the last
    cut does not cut again), one more after ``limit`` answers in a row, up to ``ceiling``.
    """

    def __init__(self, names: list[str], ceiling: int):
        self.waiting = deque(names)
        self.running: dict[Future, tuple[str, int]] = {}
        self.failures: dict[str, _Failure] = {}
        self.pauses: Counter[str] = Counter()
        self.ceiling = self.limit = ceiling
        self.cuts = 0
        self.opened = False
        self._streak = 0
        self._resume_at = 0.0

    def busy(self) -> bool:
        """Whether a request is in flight or a class is still to be asked."""
        return bool(self.running) or (bool(self.waiting) and not self.failures)

    def to_start(self) -> list[str]:
        """The classes to send now: none after a failure or during a pause."""
        if self.failures or time.monotonic() < self._resume_at:
            return []
        room = (self.limit if self.opened else 1) - len(self.running)
        return [self.waiting.popleft() for _ in range(min(room, len(self.waiting)))]

    def wait(self) -> set[Future]:
        """The requests finished once one is; an empty set when a pause ends first."""
        pause = self._resume_at - time.monotonic()
        if not self.running:
            time.sleep(max(pause, 0.0))
            return set()
        timeout = pause if pause > 0 and self.waiting and not self.failures else None
        done, _ = wait(self.running, timeout=timeout, return_when=FIRST_COMPLETED)
        return done

    def answered(self) -> None:
        """Count an answer; after ``limit`` in a row, allow one more request in flight."""
        self._streak += 1
        if self.limit < self.ceiling and self._streak >= self.limit:
            self.limit += 1
            self._streak = 0
            logger.info("ChatGPTProposer sends up to %d requests at once again", self.limit)

    def requeue(self, name: str, sent: int, pause: float | None) -> bool:
        """After a 429: pause, cut the limit and queue ``name`` again; False if it is to fail."""
        if self.ceiling == 1 or self.pauses[name] >= _MAX_PAUSES:
            return False
        self.pauses[name] += 1
        if pause is None:
            pause = min(_FIRST_PAUSE_S * 2 ** (self.pauses[name] - 1), _LONGEST_BACKOFF_S)
        self._resume_at = max(self._resume_at, time.monotonic() + pause)
        self._streak = 0
        self.waiting.append(name)
        if sent == self.cuts:  # the first 429 of the requests sent since the last cut
            self.cuts += 1
            before, self.limit = self.limit, max(1, self.limit // 2)
            if self.limit < before:
                logger.info(
                    "the server rate-limits ChatGPTProposer (429 for class %r): up to %d "
                    "requests at once, not %d, after a pause of %.3g s",
                    name,
                    self.limit,
                    before,
                    pause,
                )
        logger.debug("ChatGPTProposer pauses %.3g s and asks about class %r later", pause, name)
        return True


def _instructions(attribute: str, max_values: int | None) -> str:
    """The system message: what to list, how each value must read, and the answer format."""
    spec = get_attribute(attribute)
    plural = spec.plural or f"{spec.name}s"
    how_many = f"at most {max_values} " if max_values is not None else ""
    examples = ", ".join(f'"{e}"' for e in _EXAMPLES.get(spec.name, ()))
    if spec.value_before_class:
        reads = (
            "Each value is a lowercase adjective or short adjective phrase that reads right "
            'before the object\'s name, as in "a photo of a <value> <object>"'
        )
    elif spec.name == "background":
        reads = (
            "Each value is a short lowercase phrase that reads right after the object's name, as "
            'in "a photo of a <object> <value>", so it starts with a preposition'
        )
    else:
        reads = (
            "Each value is a short lowercase phrase that reads right after the object's name, as "
            'in "a photo of a <object> <value>"'
        )
    if examples:
        reads += f" (for example {examples})"
    return (
        "You help test an image classifier on rare images. The user asks about one kind of "
        f"object. List {how_many}uncommon {plural} of it, each different from the others, the "
        f"most telling first. {reads}. Give no explanations. Answer with a JSON object of the "
        'form {"values": ["...", "..."]}.'
    )


def _format_question(template: str, class_name: str) -> str:
    """The question about one class, with "an" before a vowel ("that an owl can ...")."""
    named = with_article(class_name).replace("{", "{{").replace("}", "}}")
    return re.sub(r"\ba \{class_name\}", lambda _: named, template).format(class_name=class_name)


def _about_response_format(err: Exception) -> bool:
    """Whether a 400/422 answer says the server does not take our ``response_format``."""
    text = f"{err} {getattr(err, 'body', '')}".lower()
    return any(word in text for word in ("response_format", "json_schema", "schema", "structured"))


def _content(completion: Any) -> tuple[str, bool]:
    """The answer's text and whether it was cut off; ``_Failure`` for no usable answer."""
    choices = getattr(completion, "choices", None) or []
    if not choices:
        raise _Failure("the server answered no choices")
    choice = choices[0]
    message = getattr(choice, "message", None)
    refusal = getattr(message, "refusal", None)
    finish_reason = getattr(choice, "finish_reason", None)
    if refusal:
        raise _refused(str(refusal))
    if finish_reason == "content_filter":
        raise _Failure(
            "the server's content filter withheld the answer (finish_reason='content_filter')"
        )
    content = getattr(message, "content", None)
    if not isinstance(content, str) or not content.strip():
        raise _Failure(f"the model gave an empty answer{_cut_note(finish_reason == 'length')}")
    return content, finish_reason == "length"


def _cut_note(cut: bool) -> str:
    return " (cut off: finish_reason='length'; allow more tokens)" if cut else ""


def _refused(text: str) -> _Failure:
    """The failure of a class the model refused, with what it said."""
    return _Failure(f"the model refused to answer: {_shorten(text)!r}")


# -- parsing ---------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[\w-]*[ \t]*\n?(.*?)```", re.DOTALL)
_MARKER = re.compile(r"^(?:[-*+\u2022\u2023\u25e6]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+(.*)$")
_EXPLANATION = re.compile(r"\s+[-\u2013\u2014]\s+|:\s+|\s+\(")
_SPLIT = re.compile(r"\s*[;,]\s*(?:(?:and|or)\s+)?")
_MAX_WORDS = 8  # an unmarked line longer than this is prose, not a value

# How a refusal in plain text opens (compared in lower case, a curly apostrophe read as "'"). An
# answer that is not JSON, has no list marker and opens with one of these is a refusal.
_REFUSAL_OPENINGS = (
    "sorry",
    "i'm sorry",
    "i am sorry",
    "i apologize",
    "i apologise",
    "my apologies",
    "as an ai",
    "as a language model",
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "unfortunately, i",
)
_REFUSAL = re.compile(rf"(?:{'|'.join(map(re.escape, _REFUSAL_OPENINGS))})\b", re.IGNORECASE)


class _Malformed(Exception):
    pass


def _parse(text: str, *, strict: bool, cut: bool = False) -> list[str]:
    """The raw values of an answer: JSON (in a fence or not), or with ``strict=False`` a list.

    Raises ``_Failure`` when the answer is a refusal (see ``_is_refusal``) or nothing in it is a
    list of values.
    """
    try:
        return _parse_or_raise(text, strict=strict)
    except _Malformed as err:
        reason = f"the answer is malformed{_cut_note(cut)}, {err}: {_shorten(text)!r}"
        raise _Failure(reason) from None


def _parse_or_raise(text: str, *, strict: bool) -> list[str]:
    text = text.strip()
    blocks = [text, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for block in blocks:
        try:
            data = json.loads(block)
        except ValueError:
            continue
        return _from_json(data)
    # JSON inside prose ("Here they are: {...}"): the widest {...} or [...] span
    for opening, closing in ("{}", "[]"):
        start, end = text.find(opening), text.rfind(closing)
        if 0 <= start < end:
            try:
                return _from_json(json.loads(text[start : end + 1]))
            except (ValueError, _Malformed):
                pass
    if _is_refusal(text):
        raise _refused(text)
    if strict:
        raise _Malformed('not the JSON object {"values": [...]} that was asked for')
    return _from_text(text)


def _is_refusal(text: str) -> bool:
    """Whether an answer that is not JSON refuses.

    It does when it opens as ``_REFUSAL_OPENINGS`` say and has no list marker ("Sorry, only
    two:" before a list is an answer).
    """
    opening = text.lstrip(_QUOTES + " \n").replace("\u2019", "'")
    lines = (line.strip() for line in text.splitlines())
    return bool(_REFUSAL.match(opening)) and not any(_MARKER.match(line) for line in lines)


def _from_json(data: Any) -> list[str]:
    if isinstance(data, dict):
        if isinstance(data.get("values"), list):
            return _from_json(data["values"])
        lists = [v for v in data.values() if isinstance(v, list)]
        if lists:
            return _from_json(lists[0])
        raise _Malformed("a JSON object without a list of values")
    if isinstance(data, list):
        values = []
        for item in data:
            if isinstance(item, dict):  # [{"value": "in a desert"}, ...]
                item = next((v for v in item.values() if isinstance(v, str)), None)
            if not isinstance(item, str):
                raise _Malformed(f"a JSON list holding {type(item).__name__}, not strings")
            values.append(item)
        return values
    raise _Malformed(f"a JSON {type(data).__name__}, not a list of values")


def _from_text(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    marked = [m.group(1) for line in lines if (m := _MARKER.match(line))]
    if marked:
        return [_drop_explanation(item) for item in marked if not item.rstrip().endswith(":")]
    if len(lines) == 1:
        items = [item for item in _SPLIT.split(lines[0]) if item.strip()]
    else:
        items = [line for line in lines if not line.endswith(":")]
    items = [_drop_explanation(item) for item in items]
    if not items or any(len(item.split()) > _MAX_WORDS for item in items):
        raise _Malformed("neither JSON nor a list")
    return items


def _drop_explanation(item: str) -> str:
    """An item without its explanation: ``"**In a desert** - rare"`` -> ``"In a desert"``."""
    bold = re.match(r"\s*\*\*(.+?)\*\*", item)
    if bold:
        return bold.group(1)
    return _EXPLANATION.split(item, maxsplit=1)[0]


# -- phrasing --------------------------------------------------------------------------------------

# First words after which a background reads on its own ("a fox underwater").
_STANDALONE = frozenset(
    {
        "aboard",
        "abroad",
        "afloat",
        "airborne",
        "aloft",
        "amidst",
        "downstairs",
        "downtown",
        "indoors",
        "outdoors",
        "overhead",
        "underground",
        "underwater",
        "upside",
        "upstairs",
        "while",
        "during",
    }
)
_DETERMINERS = frozenset({"a", "an", "the", "some", "this", "that", "its", "their", "his", "her"})
_QUOTES = "\"'`\u2018\u2019\u201c\u201d*_"


def _tidy(raw: str, class_name: str, attribute: str, before_class: bool) -> str:
    """A raw value as a phrase that reads next to the class name ("" to drop it)."""
    value = " ".join(raw.split()).strip(_QUOTES + " ").rstrip(".,;:!").strip(_QUOTES + " ")
    if not value:
        return ""
    words = value.split()
    cls = class_name.strip().lower().split()
    lowered = [w.lower() for w in words]
    if before_class:
        if len(words) > len(cls) and lowered[-len(cls) :] == cls:  # "red fox" -> "red"
            words = words[: -len(cls)]
        if len(words) > 1 and words[0].lower() in ("a", "an"):  # "a red" -> "red"
            words = words[1:]
        words[0] = _lower_first(words)  # "Dark green" -> "dark green"
        return " ".join(words)
    start = 1 if lowered[0] in _DETERMINERS else 0
    if lowered[start : start + len(cls)] == cls and len(words) > start + len(cls):
        words = words[start + len(cls) :]  # "a fox in a desert" -> "in a desert"
    words[0] = _lower_first(words)  # "In a desert" -> "in a desert"
    if attribute == "background" and not _reads_after_a_name(words):
        if words[0].lower() not in _DETERMINERS:
            words = ["the", *words]
        words = ["in", *words]  # "desert" -> "in the desert"
    return " ".join(words)


def _lower_first(words: list[str]) -> str:
    """The first word in lower case if it is only capitalised as a list item's first word.

    "In", "Desert" and "Dark" (of "Dark green") are; "RGB" and the "Sahara" of "Sahara Desert"
    (every word capitalised, a name) are not.
    """
    first = words[0]
    capitalised = first[:1].isupper() and (len(first) == 1 or first[1:].islower())
    name = len(words) > 1 and all(w[:1].isupper() for w in words)
    return first.lower() if capitalised and not name else first


def _reads_after_a_name(words: list[str]) -> bool:
    """Whether a background phrase can follow a class name as it is ("on a lake", "floating")."""
    first = [re.sub(r"[^\w-]", "", w).lower() for w in words[:2]]
    if first[0] in PREPOSITIONS or first[0] in _STANDALONE:
        return True
    if tuple(first) in PREPOSITION_PHRASES:  # "next to a road", "out of water"
        return True
    if len(first[0]) > 4 and first[0].endswith("ing"):  # "floating in space"
        return True
    # "covered in snow", "surrounded by trees"
    return len(first) == 2 and first[0].endswith("ed") and first[1] in PREPOSITIONS


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _request_failed(client: Any, err: Exception) -> str:
    """Why a request failed, with the client's retries."""
    retries = getattr(client, "max_retries", None)
    after = f" after {retries} retries" if isinstance(retries, int) and retries else ""
    return f"the request failed{after}: {type(err).__name__}: {err}"


def _retry_after(err: Any) -> float | None:
    """Seconds a 429 answer's ``retry-after-ms`` or ``retry-after`` header asks to wait."""
    headers = getattr(getattr(err, "response", None), "headers", None) or {}
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(header)) * scale
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return min(seconds, _LONGEST_PAUSE_S)
    return None


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _without_header_values(options: Any) -> Any:
    """``request_options`` without header values (``extra_headers`` may carry credentials)."""
    if not isinstance(options, Mapping):
        return options
    return {
        k: (sorted(v) if k == "extra_headers" and isinstance(v, Mapping) else v)
        for k, v in options.items()
    }


# -- secrets ---------------------------------------------------------------------------------------

_KEY = re.compile(r"[!-~]*")  # printable ASCII without whitespace, as API keys are

# The loggers of the openai client and its HTTP stack (``httpx``, ``httpcore``, and forks of
# them named by prefix): they log request URLs, which may carry secrets.
_HTTP_LOGGERS = ("openai", "httpx", "httpcore")


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _checked_key(key: str, name: str) -> str:
    """``key`` if it is printable ASCII without whitespace.

    Raises:
        ValueError: naming ``name`` and what is wrong (and where), never the key.
    """
    if _KEY.fullmatch(key):
        return key
    position, odd = next((i, c) for i, c in enumerate(key) if not _KEY.fullmatch(c))
    if odd.isspace():
        what = "whitespace"
    else:
        what = "a control character" if odd.isascii() else "a non-ASCII character"
    raise ValueError(
        f"{name} must be printable ASCII with no whitespace inside, as API keys are, but it "
        f"holds {what} at position {position} (surrounding whitespace is stripped; the key is "
        "not shown)"
    )


def _shown_forms(secret: str) -> set[str]:
    """How a secret may show: as it is, percent-decoded, or percent-encoded (in a URL)."""
    secret = secret.strip()
    return {secret, unquote(secret), quote(secret, safe=""), quote_plus(secret, safe="")}


class _Scrub(logging.Filter):
    """Replaces secrets by ``***`` in a record's message and traceback; drops no record."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: keep them out too
            message, record.args = str(record.msg), None
        if any(secret in message for secret in self.secrets):
            record.msg, record.args = _redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if any(secret in text for secret in self.secrets):
                record.exc_info, record.exc_text = None, _redact(text, self.secrets)
        return True


@contextmanager
def _scrubbed_logs(secrets: list[str]) -> Iterator[None]:
    """In the block, ``secrets`` read ``***`` in the records of the ``_HTTP_LOGGERS``.

    A filter on a logger sees only the records logged to it, not those of its children, so it
    goes on each of these loggers and on every logger already made whose name starts with one
    (``httpcore.http11``, ...: their modules make them on import).
    """
    scrub = _Scrub(secrets)
    loggers = {logging.getLogger(name) for name in _HTTP_LOGGERS}
    loggers.update(
        each
        for name, each in list(logging.Logger.manager.loggerDict.items())
        if isinstance(each, logging.Logger) and name.split(".")[0].startswith(_HTTP_LOGGERS)
    )
    for each in loggers:
        each.addFilter(scrub)
    try:
        yield
    finally:
        for each in loggers:
            each.removeFilter(scrub)
