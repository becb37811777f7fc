"""offramp.util: the helpers shared by several layers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from offramp.util import HIDDEN_URL, content_hash, password_to_environment, safe_url, url_password


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


# Stored keys (cache keys, config/spec/program/compile/study hashes, served-model identities) must
# stay byte-identical to the ones warehouses already hold. The expected values below were computed
# with the code before `content_hash` existed; `_old` is that code's formula.
REQUEST = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Où est ma carte ?"}],
           "settings": {"temperature": 0.0, "max_tokens": 64, "stop": ["\n"]}}


def _old(value, length=None):
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    return digest if length is None else digest[:length]


def test_content_hash_known_values():
    assert content_hash(REQUEST) == "bc943a5e37dadcd7739b3bf2df5b3e09dc4846d93ca764419de2561df9c36b99"
    assert content_hash(REQUEST, compact=False) == "c224a943bcbda32adddb6b1701846a9e79f0738531fc95b53fe74ed2d3334bc4"
    assert content_hash(REQUEST, length=16, compact=False) == "c224a943bcbda32a"
    assert content_hash(["abc", None, ["<|im_end|>"]], compact=False) == (
        "61af1f833847c2f7fcbd916dd4dbf28d54afc3b1841e459e4be1610b39aeed72")
    assert content_hash({"b": 1, "a": Path("/x")}) == content_hash({"a": "/x", "b": 1})  # non-JSON: its str


def test_response_cache_keys_are_unchanged():
    from offramp.tasks.gateway.llm import LLMRequest

    request = LLMRequest(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Où est ma carte ?"}],
                         settings={"temperature": 0.0, "max_tokens": 64})
    assert request.cache_key == "73f65668ac68120804bd969ba3784933b92968d33096a58649cc837c815ea94c"
    assert request.prompt_hash == "faa7500ca5fef5e684cff2bcb313174517b2ca53d94109ac0363e5b88addd276"
    salted = LLMRequest(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], settings={},
                        cache_salt="rollout-1")
    assert salted.cache_key == "725534ee751d38156ddf9941b70ebb1779b3831961a383fb4d1539c65fca2dd6"


def test_stored_hashes_match_the_formula_they_were_made_with(tmp_path):
    from offramp.flows.migrate_feature import study_key
    from offramp.flows.params import MigrateParams
    from offramp.search_spaces.schema import Config, load_space
    from offramp.tasks.feature.programs import compile_key, program_hash
    from offramp.tasks.feature.spec import load_feature, split_examples
    from offramp.tasks.gateway import local_models
    from offramp.tasks.study.prepare import Prepared
    from tests.conftest import BANK
    from tests.helpers import make_space

    feature = load_feature(BANK)
    spec = feature.spec
    space = load_space(make_space(tmp_path / "space.yaml", ["fake/good"]))
    config = Config(model="fake/good", instructions=spec.incumbent.instructions, settings=spec.incumbent.settings)
    train = split_examples(feature, seed=0).train
    assert config.config_hash() == _old(config.model_dump(mode="json"), 16)
    before_endpoints = spec.model_dump(mode="json")
    assert before_endpoints["incumbent"].pop("endpoint") is None  # a plain id: hashed without the new field
    assert before_endpoints["data"].pop("unlabeled") is None  # likewise a feature without unlabeled inputs
    assert before_endpoints["data"].pop("slice_files") == []  # likewise a feature without slice files
    assert before_endpoints["data"].pop("samples") is None  # likewise a feature without production samples
    assert before_endpoints["metric"].pop("judge") is None  # and a feature without a judge metric
    assert spec.spec_hash() == _old(before_endpoints)
    state = {"demos": [{"text": "où est ma carte", "queue": "cards"}], "signature": {"instructions": "Route it."}}
    assert program_hash(state) == _old(state, 16)
    payload = {"feature": spec.name, "signature": spec.signature.model_dump(mode="json"),
               "config": config.model_dump(mode="json"), "train": [e.id for e in train], "seed": 3}
    assert compile_key(spec, config, train, 3) == _old(payload, 24)
    for alias, model in local_models.zoo().items():
        old = hashlib.sha256(json.dumps([model.sha256, model.chat_template, list(model.stop)]).encode()).hexdigest()[:16]
        assert local_models.served_identity(alias) == old
    params = MigrateParams(feature_dir=str(BANK), space=str(tmp_path / "space.yaml"))
    study = params.model_dump(mode="json", exclude={"trigger", "event_id", "gateway", "start_local_models", "new_study",
                                                    "feature_dir", "space", "max_spend_usd", "raise_cap"})  # the cap is the study's
    space_before = space.model_dump(mode="json")
    assert space_before.pop("endpoints") == {}  # no declared models: keyed without the new field
    assert space_before.pop("composites") is True  # the default: keyed without it
    assert space_before["settings"].pop("adapter") == []  # no output adapter listed: keyed without it
    study.update(spec=spec.spec_hash(), space=space_before, seed=7)
    assert study_key(params, Prepared(feature, space, {}, 7, split_examples(feature, seed=7))) == _old(study, 10)


def test_a_postgres_password_moves_to_the_environment_and_other_urls_stay(monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    assert password_to_environment("sqlite:////tmp/optuna.db") == "sqlite:////tmp/optuna.db"
    assert "PGPASSWORD" not in os.environ
    assert password_to_environment("postgresql+psycopg://alice:s3cr%40t@db:5432/optuna") == "postgresql+psycopg://alice@db:5432/optuna"
    assert os.environ["PGPASSWORD"] == "s3cr@t"
    assert url_password("postgresql://alice@db/optuna") is None and url_password("not a url") is None
