"""Settings: environment only, one clear line per invalid variable, all listed in the README."""

import re
from pathlib import Path

import pytest

from core.settings import Settings, SettingsError, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults_serve_the_bundled_snapshot_and_pipelines_without_a_generator():
    settings = load_settings()
    assert settings.generator == "none"
    assert settings.document_store == "memory"
    assert settings.max_query_chars == 5000
    assert settings.store_snapshot_uri.endswith("data/stdlib.snapshot")
    assert (settings.pipelines_dir / "search.yml").is_file()


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("GENERATOR", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("OPENAI_MODEL", "llama3.2")
    monkeypatch.setenv("MAX_QUERY_CHARS", "100")
    monkeypatch.setenv("STORE_SNAPSHOT_URI", "s3://bucket/snapshots/stdlib.snapshot")
    settings = load_settings()
    assert (settings.generator, settings.openai_model, settings.max_query_chars) == ("openai", "llama3.2", 100)
    assert settings.store_snapshot_uri == "s3://bucket/snapshots/stdlib.snapshot"


@pytest.mark.parametrize(
    ("env", "names", "expects"),
    [
        ({"GENERATOR": "gpt"}, ["GENERATOR"], "'bedrock', 'openai' or 'none'"),
        ({"GENERATOR": "openai"}, ["OPENAI_BASE_URL", "OPENAI_MODEL"], "needs"),
        ({"GENERATOR": "openai", "OPENAI_BASE_URL": "not a url", "OPENAI_MODEL": "m"}, ["OPENAI_BASE_URL"], "URL"),
        ({"MAX_QUERY_CHARS": "many"}, ["MAX_QUERY_CHARS"], "integer"),
        ({"MAX_QUERY_CHARS": "0"}, ["MAX_QUERY_CHARS"], "greater than or equal to 1"),
        ({"DOCUMENT_STORE": "pgvector"}, ["DOCUMENT_STORE"], "'memory'"),
        ({"STORE_SNAPSHOT_URI": "ftp://host/file"}, ["STORE_SNAPSHOT_URI"], "s3://bucket/key"),
        ({"STORE_SNAPSHOT_URI": "s3://bucket-only"}, ["STORE_SNAPSHOT_URI"], "s3://bucket/key"),
        ({"LOG_LEVEL": "loud"}, ["LOG_LEVEL"], "'DEBUG'"),
    ],
)
def test_invalid_values_stop_with_one_line_naming_the_variable(monkeypatch, env, names, expects):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("invalid settings: ")
    for name in names:
        assert name in message
    assert expects in message


def test_secrets_are_not_shown_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    settings = load_settings()
    assert "sk-very-secret" not in repr(settings)
    assert settings.openai_api_key.get_secret_value() == "sk-very-secret"


def test_every_setting_is_in_the_readme_table():
    text = README.read_text()
    rows = set(re.findall(r"^\|\s*`([A-Z0-9_]+)`\s*\|", text, flags=re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields <= rows, f"missing from README: {sorted(fields - rows)}"
