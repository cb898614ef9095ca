"""What of a parameter may be logged: secrets redacted, long values cut.

A key is secret when any of its dotted parts contains a secret word (``api_key``, ``hf_token``,
``password``, anything under ``credentials``); a ``scheme://user:password@host`` URL has its
password masked wherever it appears. The *name* of an environment variable under a key ending in
``_env`` (``api_key_env: OPENAI_API_KEY``) is kept: that is the design for secrets, the value
itself stays in the environment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

MAX_PARAM_CHARS = 500
REDACTED = "[redacted]"

# Words of a parameter key (snake/kebab/camel case split, lower-cased) that mark its value secret;
# "key" only after api/access/private/secret/signing (``dedup.key`` is not a secret). Plural
# "tokens" (``max_tokens``) and "tokenizer" are not.
_SECRET_WORDS = {"token", "secret", "secrets", "password", "passwd", "pwd", "passphrase", "credential",
                 "credentials", "apikey", "auth", "authorization", "bearer", "cookie"}
_KEY_QUALIFIERS = {"api", "access", "private", "secret", "signing", "client"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+):[^/\s@]+@")


def _words(key: str) -> list[str]:
    """The lower-cased words of one key part: ``apiKey`` and ``api-key`` both give ``[api, key]``."""
    return [w for w in re.split(r"[^a-z0-9]+", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()) if w]


def is_secret_key(key: str) -> bool:
    """Whether a (dotted) parameter key names a secret, in any of its parts."""
    for part in key.split("."):
        words = _words(part)
        if any(w in _SECRET_WORDS for w in words) or any(
                w == "key" and i and words[i - 1] in _KEY_QUALIFIERS for i, w in enumerate(words)):
            return True
    return False


def redact(key: str, value: str) -> str:
    """``value`` as it may be logged: ``[redacted]`` under a secret key, except the *name* of an
    environment variable under a key ending in ``_env`` (``api_key_env: OPENAI_API_KEY``, the
    design for secrets: the value stays in the environment); URL passwords masked everywhere."""
    if is_secret_key(key):
        words = _words(key.rsplit(".", 1)[-1])
        if not (words and words[-1] == "env" and (value == "None" or _ENV_NAME.fullmatch(value))):
            return REDACTED
    return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)


def flatten(prefix: str, value, out: dict) -> dict:
    """Flatten nested parameters into ``a.b.c`` keys with short, redacted string values.

    Mappings and the typed configs (dataclasses: a stage's ``train``, ``launch`` ...) are walked key
    by key, so every value is its own MLflow param and key-based redaction sees every key."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if not f.name.startswith("_")}
    if isinstance(value, Mapping):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = redact(prefix, str(value))[:MAX_PARAM_CHARS]
    return out
