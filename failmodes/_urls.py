"""Secrets in URLs: the user info of ``scheme://user:secret@host`` is never shown.

A URL may carry a password (``ftp://alice:secret@host``), or a token as its user name
(``https://token@host``). What failmodes shows or records of a URL (a cache's location, a
proposer's server, error messages) has that secret replaced by ``***``; the URL itself is kept
only where it is used.
"""

from __future__ import annotations

import re

__all__ = ["hide_credentials", "url_credentials"]

# a scheme (even a broken one: the URL may be shown in the error that refuses it), then the
# user info, up to the first ``@`` before the path
_USERINFO = re.compile(r"^(?P<scheme>[^:/?#]*://)(?P<userinfo>[^/?#]*)@")


def url_credentials(url: str) -> tuple[str, str | None]:
    """``url`` with the secret of its user info shown as ``***``, and that secret (or ``None``).

    The secret is the password (``http://user:secret@host``), or a user name alone
    (``http://secret@host``), as services put tokens there.

    Args:
        url: a URL; text without user info (a folder, say) is returned as it is.

    Returns:
        ``(url as shown, secret)``; the secret is ``None`` when there is no user info.

    Examples:
        >>> from failmodes._urls import url_credentials
        >>> url_credentials("s3://key:secret@bucket/cache")
        ('s3://key:***@bucket/cache', 'secret')
        >>> url_credentials("/home/me/cache")
        ('/home/me/cache', None)
    """
    found = _USERINFO.match(url)
    if found is None:
        return url, None
    shown, secret = _hidden(found["userinfo"])
    return f"{found['scheme']}{shown}@{url[found.end() :]}", secret


def hide_credentials(text: str, url: str) -> str:
    """``text`` with the user info of ``url`` shown as [`url_credentials`][url_credentials] does.

    For messages that quote the URL, or the path a library made of it (fsspec's ``memory://``
    store names ``/alice:secret@bucket/x`` in its errors).

    Args:
        text: a message.
        url: the URL whose secret must not show.

    Returns:
        ``text``, each ``user:secret@`` of ``url`` in it replaced by ``user:***@``.
    """
    found = _USERINFO.match(url)
    if found is None or not found["userinfo"]:
        return text
    userinfo = found["userinfo"]
    return text.replace(f"{userinfo}@", f"{_hidden(userinfo)[0]}@")


def _hidden(userinfo: str) -> tuple[str, str]:
    """User info as shown, and its secret: the password, or a user name alone (a token)."""
    user, colon, password = userinfo.partition(":")
    return (f"{user}:***", password) if colon else ("***", user)
