"""Keys and headers are anyone's bytes: what the engine stores of them must be storable.

PostgreSQL's text and jsonb refuse NUL, and a lone surrogate cannot be encoded; a
message carrying either used to fail every write about it, its dead letter
included, and so block its partition.
"""

from __future__ import annotations

import pytest

from service.engine.failures import Failure, Incoming, failure_headers, pg_text
from service.engine.retry import ErrorClass


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("plain", "plain"),
        ("a\x00b", "a\ufffdb"),
        ("x\ud800y", "x\ufffdy"),
        ("\U0001f600 \u2028", "\U0001f600 \u2028"),
    ],
)
def test_pg_text_replaces_only_what_cannot_be_stored(raw: str, stored: str) -> None:
    assert pg_text(raw) == stored
    assert pg_text(stored) == stored  # idempotent: a tier copy keys like its original


def test_keys_and_headers_are_read_as_storable_text() -> None:
    msg = Incoming(
        "claims.events",
        0,
        7,
        b"k\x00\xff",
        b"{}",
        {"a\x00": b"v\x00", "bin": b"\xff\xfe", "x-attempt": b"2"},
    )
    assert msg.key_text == "k\ufffd\ufffd"
    assert msg.text_headers() == {"a\ufffd": "v\ufffd", "bin": "\ufffd\ufffd", "x-attempt": "2"}
    assert msg.attempt == 2


def test_failure_headers_hold_no_nul_even_when_the_error_quotes_one() -> None:
    msg = Incoming("claims.events", 0, 7, b"k", b"{}", {"h\x00": b"\x00"})
    failure = Failure(ErrorClass.RETRYABLE, ValueError("bad \x00 input"), 1, "bad \x00 input")
    headers = failure_headers(msg, failure, "group", 0.0)
    assert not any("\x00" in k or "\x00" in v for k, v in headers.items())
    assert headers["x-error-message"] == "bad \ufffd input"
