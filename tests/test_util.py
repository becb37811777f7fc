"""offramp.util: the helpers shared by several layers."""

from __future__ import annotations

import pytest

from offramp.util import HIDDEN_URL, safe_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
        ("postgresql+psycopg://user:secret@host:5432/db?sslmode=require", "postgresql+psycopg://user:***@host:5432/db?sslmode=require"),
        ("postgresql://host/db?password=secret&sslmode=require", "postgresql://host/db?sslmode=require"),
        ("sqlite:///relative/optuna.db", "sqlite:///relative/optuna.db"),
        ("sqlite:////abs/optuna.db", "sqlite:////abs/optuna.db"),
        ("http://user:secret@host:4200/api", "http://host:4200/api"),
        ("https://secret@git.example.com/repo", "https://git.example.com/repo"),
        ("https://api.example.com/v1?token=secret&page=2", "https://api.example.com/v1?page=2"),
        ("https://api.example.com/v1/models", "https://api.example.com/v1/models"),
        ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200/api"),
    ],
)
def test_safe_url_strips_credentials_and_keeps_the_rest(url, expected):
    assert safe_url(url) == expected
    assert "secret" not in safe_url(url)


@pytest.mark.parametrize("garbage", ["user:secret@host", "not a url secret", "", "://secret", None])
def test_safe_url_hides_garbage_without_raising(garbage):
    assert safe_url(garbage) == HIDDEN_URL
