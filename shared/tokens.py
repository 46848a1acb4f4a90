"""API tokens: generated with enough entropy that a plain SHA-256 is a safe stored form."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "fy_"


def new_token() -> str:
    """A fresh bearer token (256 bits of randomness)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token.

    Tokens are random and long, so a fast hash cannot be brute-forced; a slow password
    hash would only add latency to every API call.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
