"""URLs as messages may show them: without a password or a secret query parameter."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact"]

#: query parameters whose value is a credential (compared in lower case)
_SECRET_PARAMETERS = frozenset(
    {"password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "access_token"}
)


def redact(url: str) -> str:
    """``url`` with its password (in the user part) and every credential-bearing query
    parameter (``password=``, ``token=``, ``api_key=``…) replaced by ``***``; the user, host,
    path and other parameters stay, so the message still says where."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hostport}"
    query = "&".join(
        f"{item.split('=', 1)[0]}=***"
        if item.split("=", 1)[0].lower() in _SECRET_PARAMETERS
        else item
        for item in parts.query.split("&")
        if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
