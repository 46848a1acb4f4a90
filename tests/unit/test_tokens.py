"""API tokens (SPEC 3): random bearer tokens, stored only as a hash."""

from __future__ import annotations

from shared.tokens import TOKEN_PREFIX, hash_token, new_token


def test_given_a_token_when_hashed_twice_then_the_hash_is_the_same() -> None:
    """The stored hash finds the token again on every request."""
    token = new_token()

    assert hash_token(token) == hash_token(token)


def test_given_a_token_when_hashed_then_the_hash_does_not_contain_the_token() -> None:
    """Only a hash is stored (SPEC 3): a database leak does not leak usable tokens."""
    token = new_token()
    stored = hash_token(token)

    assert stored != token
    assert token not in stored
    assert token[len(TOKEN_PREFIX) :] not in stored
    assert len(stored) == 64
    assert set(stored) <= set("0123456789abcdef")


def test_given_two_different_tokens_when_hashed_then_the_hashes_differ() -> None:
    """One token never unlocks another account."""
    token = new_token()
    other = token[:-1] + ("A" if token[-1] != "A" else "B")

    assert hash_token(token) != hash_token(other)


def test_new_tokens_are_random_long_and_url_safe() -> None:
    """Tokens cannot be guessed from each other and travel in a header unescaped."""
    tokens = [new_token() for _ in range(200)]

    assert len(set(tokens)) == len(tokens)
    assert len({hash_token(t) for t in tokens}) == len(tokens)
    for token in tokens:
        assert token.startswith(TOKEN_PREFIX)
        body = token[len(TOKEN_PREFIX) :]
        assert len(body) >= 43  # 32 random bytes in URL-safe base64
        assert set(body) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
