"""Hide credentials in URLs: ``mask_url`` for one URL, ``mask_text`` for every URL in a log line.

One rule for the API (camera sources), the stream workers (errors, status) and the log filter: userinfo
(``user:pw@``) and the values of secret-looking query parameters become ``***``; a URL that cannot be
parsed unambiguously (a password with an unescaped ``/``, ``?`` or ``@``, a bad port) becomes ``***``
whole, because guessing where its secret ends could leak part of it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

#: Query (and fragment) parameters whose values are credentials. A key matches when one of its words
#: (split at ``-``, ``_`` and ``.``) is listed, so ``access_token`` and ``X-Amz-Signature`` match too.
SECRET_QUERY_WORDS = frozenset(
    {
        "user",
        "username",
        "login",
        "pass",
        "passwd",
        "password",
        "pwd",
        "token",
        "key",
        "apikey",
        "auth",
        "authorization",
        "signature",
        "sig",
        "secret",
        "credential",
        "credentials",
        "session",
        "sid",
    }
)

_WORD_SPLIT = re.compile(r"[-_.]")
#: A ``scheme://`` URL inside free text; it ends at whitespace or a quote/bracket that closes it.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
#: A ``key=value`` query parameter anywhere (relative request paths in access logs have no scheme).
_PARAM_IN_TEXT = re.compile(r"(?P<lead>[?&;#])(?P<key>[A-Za-z0-9_.\-]+)=(?P<value>[^&;#\s'\"<>`]*)")


def is_secret_key(key: str) -> bool:
    """True for query keys that carry credentials: ``pwd``, ``access_token``, ``X-Amz-Signature``…"""
    low = key.lower()
    return low in SECRET_QUERY_WORDS or any(w in SECRET_QUERY_WORDS for w in _WORD_SPLIT.split(low))


def _mask_params(text: str) -> str:
    return _PARAM_IN_TEXT.sub(
        lambda m: f"{m['lead']}{m['key']}={MASK}" if is_secret_key(m["key"]) and m["value"] else m[0], text
    )


def mask_url(url: str) -> str:
    """One URL with its credentials replaced by ``***``; an unparseable URL is ``***`` whole.

    Strings without ``://`` (file paths, device indices) are returned as they are unless they hold an
    ``@`` (``user:pw@host`` without a scheme), which masks them whole.

    Example:
        >>> mask_url("rtsp://admin:hunter2@10.0.0.5:554/ch1?channel=1&pwd=x")
        'rtsp://***@10.0.0.5:554/ch1?channel=1&pwd=***'
    """
    if "://" not in url:
        return MASK if "@" in url else url
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a non-numeric port: the password swallowed a '/' or '?'
    except ValueError:
        return MASK
    netloc = parts.netloc
    after_netloc = url.split("://", 1)[1][len(netloc) :]
    if (
        not parts.scheme
        or not parts.hostname
        or "@" in after_netloc  # 'user:pa/ss@host': where the secret ends is a guess
        or any(c.isspace() for c in netloc)
    ):
        return MASK
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = _mask_params("?" + parts.query)[1:] if parts.query else ""
    fragment = _mask_params("#" + parts.fragment)[1:] if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def mask_text(text: str) -> str:
    """Every URL in ``text`` through ``mask_url``, and secret ``key=value`` parameters of relative paths.

    Example:
        >>> mask_text('GET /api/evidence/object/a.jpg?expires=1&signature=ab12 from rtsp://u:p@cam/1')
        'GET /api/evidence/object/a.jpg?expires=1&signature=*** from rtsp://***@cam/1'
    """
    return _mask_params(_URL_IN_TEXT.sub(lambda m: mask_url(m[0]), text))
