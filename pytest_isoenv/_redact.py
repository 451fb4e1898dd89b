"""Redaction: credentials in URLs never reach the terminal, an error, a manifest or a cache key.

Matches what uv itself displays, so our lines and uv's read alike: a password becomes ``****``
(``https://user:****@host/``), a user name without a password is taken for a token and becomes
``****`` (``https://****@host/``), except the generic ``git`` user of SSH-style Git URLs; and the
values of signed-URL query parameters (``sig``, ``X-Amz-Signature``, ...) become ``****``.
"""

from __future__ import annotations

import re

MASK = "****"

# A URL's scheme and userinfo. The userinfo cannot hold '/', '?', '#' or whitespace, and runs to
# the last '@' before them (a password with a bare '@' is still hidden whole).
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^\s/?#@'\"<>]*(?:@[^\s/?#@'\"<>]*)*)@"
)
# Query parameters of signed URLs (Azure shared access signatures, AWS pre-signed URLs).
_SIGNED_QUERY = re.compile(
    r"(?P<key>[?&](?:sig|X-Amz-Credential|X-Amz-Security-Token|X-Amz-Signature)=)[^&\s#'\"<>]*",
    re.IGNORECASE,
)
# Schemes whose ``git@`` user name is the generic one, not a secret.
_GIT_USER_SCHEMES = frozenset({"ssh", "git+ssh", "git+https"})


def _userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match["scheme"], match["userinfo"]
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        shown = f"{user}:{MASK}"
    elif userinfo == "git" and scheme.lower() in _GIT_USER_SCHEMES:
        shown = userinfo
    else:
        shown = MASK
    return f"{scheme}://{shown}@"


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``****``."""
    if "@" not in text and "=" not in text:
        return text
    return _SIGNED_QUERY.sub(rf"\g<key>{MASK}", _USERINFO.sub(_userinfo, text))
