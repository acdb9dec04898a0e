"""Configuration: found, validated, secrets from the environment."""

from __future__ import annotations

import pytest

from mailer.config import load_config
from mailer.errors import ConfigError


def test_init_writes_a_config_that_loads_with_defaults(workspace):
    config = workspace.config()
    assert config.sender.list_id == "arcticsmartness.eu"
    assert config.smtp.max_attempts == 8
    assert config.database_path == workspace.path / "mailer.db"
    assert config.list_kinds == ("cluster", "municipality", "company")


def test_init_refuses_to_overwrite_unless_forced(workspace):
    before = workspace.config_path.read_text()
    res = workspace.cli("init", str(workspace.path))
    assert res.exit_code == 2
    assert "already exists" in res.stderr and res.stderr.count("\n") == 1
    assert workspace.config_path.read_text() == before


def test_init_force_rewrites_the_config_but_keeps_secrets_and_edited_templates(workspace):
    old = load_config(workspace.config_path, {})
    workspace.set_config("web", "previous_secrets", '["rotated-out-2025-after-the-october-issue"]')
    workspace.set_config("smtp", "host", '"relay.example.org"')
    template = workspace.path / "templates" / "newsletter.txt"
    template.write_text("edited by staff", encoding="utf-8")
    res = workspace.cli("init", str(workspace.path), "--force")
    assert res.exit_code == 0, res.stderr
    new = load_config(workspace.config_path, {})
    assert new.smtp.host == "localhost"  # the file is written anew...
    assert new.secret() == old.secret()  # ...but sent links keep working
    assert new.web.previous_secrets == ("rotated-out-2025-after-the-october-issue",)
    assert template.read_text(encoding="utf-8") == "edited by staff"


def test_init_writes_a_fresh_random_secret_each_time(tmp_path, cli_runner):
    from mailer.cli import app

    for name in ("a", "b"):
        cli_runner.invoke(app, ["init", str(tmp_path / name)], env={"MAILER_SECRET": ""})
    secrets = {load_config(tmp_path / n / "mailer.toml", {}).secret() for n in ("a", "b")}
    assert len(secrets) == 2 and all(len(s) >= 32 for s in secrets)


def test_environment_secret_wins_over_the_file(workspace):
    from_env = "from-the-environment-0123456789abcdef"
    config = load_config(workspace.config_path, {"MAILER_SECRET": from_env})
    assert config.secret() == from_env.encode()
    assert load_config(workspace.config_path, {}).secret() != from_env.encode()


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("smtp", "port", '"587"', "smtp.port must be an integer"),
        ("smtp", "colour", '"blue"', "smtp.colour unknown key"),
        ("smtp", "security", '"ssl"', "smtp.security must be one of"),
        ("defaults", "language", '"de"', "defaults.language"),
        ("web", "base_url", '"ftp://x"', "web.base_url"),
        ("web", "base_url", '"https://uutiset.example.org/a b"', "web.base_url"),
        ("web", "base_url", '"https://uutiset.läppi.example/"', "web.base_url"),
        ("sender", "address", '"bad addr@example.org"', "sender.address"),
        ("sender", "reply_to", '"Toimitus <t@example.org>"', "sender.reply_to"),
        ("sender", "list_id", '"not a domain"', "sender.list_id"),
    ],
)
def test_a_bad_key_is_exit_2_naming_the_key(workspace, section, key, value, needle):
    workspace.set_config(section, key, value)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        workspace.config()
    res = workspace.cli("backup", str(workspace.path / "b.db"))
    assert res.exit_code == 2
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


def test_malformed_toml_and_missing_file_are_one_line_errors(workspace, tmp_path):
    workspace.config_path.write_text("[sender\nname = ", encoding="utf-8")
    res = workspace.cli("backup", str(workspace.path / "b.db"))
    assert res.exit_code == 2 and res.stderr.startswith("Error: ")
    assert "malformed TOML" in res.stderr and res.stderr.count("\n") == 1
    res = workspace.cli(
        "backup", str(workspace.path / "b.db"), env={"MAILER_CONFIG": str(tmp_path / "no")}
    )
    assert res.exit_code == 2 and "no configuration" in res.stderr


def test_config_option_wins_over_environment(workspace, tmp_path):
    res = workspace.cli(
        "--config", str(tmp_path / "missing.toml"), "backup", str(tmp_path / "b.db")
    )
    assert res.exit_code == 2
    assert "missing.toml" in res.stderr


def test_the_bounces_section_is_checked_key_by_key(workspace):
    from mailer.config import load_config

    workspace.set_config("bounces", "address", '"bounces@arcticsmartness.eu"')
    config = load_config(workspace.config_path, {"MAILER_IMAP_PASSWORD": "pw"})
    assert config.bounces is not None and config.bounces.soft_limit == 3
    assert config.imap_password() == "pw"
    for key, value, named in [
        ("security", '"none"', "bounces.security"),
        ("address", '"bounces+x@arcticsmartness.eu"', "bounces.address"),
        ("address", '"' + "b" * 60 + '@arcticsmartness.eu"', "bounces.address"),
        ("soft_limit", "0", "bounces.soft_limit"),
        ("auth", '"magic"', "bounces.auth"),
        ("processed_folder", '"INBOX"', "bounces.processed_folder"),
        ("imap_hots", '"x"', "bounces.imap_hots"),
    ]:
        saved = workspace.config_path.read_text(encoding="utf-8")
        workspace.set_config("bounces", key, value)
        res = workspace.cli("bounces", "list")
        assert res.exit_code == 2 and named in res.stderr, (key, res.stderr)
        workspace.config_path.write_text(saved, encoding="utf-8")


def test_without_bounces_the_envelope_sender_is_the_sender_address(workspace):
    from mailer.sending.content import envelope_sender

    assert envelope_sender(workspace.config()) == "uutiset@arcticsmartness.eu"
    workspace.set_config("bounces", "address", '"bounces@arcticsmartness.eu"')
    assert envelope_sender(workspace.config()) == "bounces@arcticsmartness.eu"
