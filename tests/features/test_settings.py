import pytest

from features.settings import ConfigError, load_settings


def test_defaults_live_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("REPLENISH_HOME", str(tmp_path / "h"))
    s = load_settings()
    assert s.home == (tmp_path / "h").resolve()
    assert s.database_url == f"sqlite:///{s.home / 'state.db'}"
    assert s.facts_dir == s.home / "facts"
    assert s.mlflow_tracking_uri.startswith("sqlite:///") and str(s.home) in s.mlflow_tracking_uri


def test_environment_overrides_yaml(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 9001\ntenant: acme\n")
    monkeypatch.setenv("REPLENISH_CONFIG", str(cfg))
    assert load_settings().port == 9001
    monkeypatch.setenv("REPLENISH_PORT", "9002")
    s = load_settings()
    assert (s.port, s.tenant) == (9002, "acme")


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("REPLENISH_PORT", "0", "port = '0'"),
        ("REPLENISH_ENV", "staging", "env = 'staging'"),
        ("REPLENISH_TENANT", "Bad Tenant!", "tenant = 'Bad Tenant!'"),
    ],
)
def test_wrong_setting_names_field_value_and_allowed(monkeypatch, env, value, needle):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert needle in str(exc.value)


def test_unknown_key_in_yaml_is_refused(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("prot: 80\n")
    monkeypatch.setenv("REPLENISH_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="prot"):
        load_settings()


def test_production_refuses_unsafe_defaults(monkeypatch):
    monkeypatch.setenv("REPLENISH_ENV", "production")
    with pytest.raises(ConfigError, match="webhook_secret"):
        load_settings()
    monkeypatch.setenv("REPLENISH_WEBHOOK_SECRET", "s3cret-from-vault")  # too short for production
    with pytest.raises(ConfigError, match="webhook_secret: at least 32 characters"):
        load_settings()
    monkeypatch.setenv("REPLENISH_WEBHOOK_SECRET", "s3cret-from-vault-" + "x" * 20)
    with pytest.raises(ConfigError, match="database_url"):
        load_settings()
    monkeypatch.setenv("REPLENISH_DATABASE_URL", "postgresql+psycopg://u:p@db/replenish")
    assert load_settings().env == "production"


def test_missing_config_file_is_named(monkeypatch):
    monkeypatch.setenv("REPLENISH_CONFIG", "/nonexistent/replenish.yaml")
    with pytest.raises(ConfigError, match="/nonexistent/replenish.yaml"):
        load_settings()
