"""The service config: the example parses, secrets come from the environment only, and
every bad value names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.errors import InputError
from ccd.config import load_config, parse_config, parse_listen

ROOT = Path(__file__).resolve().parent.parent
ENV = {"CCD_AMI_SECRET": "ami-secret-value", "CCD_ADMIN_TOKEN": "admin-token-0123456789"}


def test_example_config_parses() -> None:
    cfg = load_config(ROOT / "config" / "ccd.toml", env=ENV)
    assert (cfg.listen_host, cfg.listen_port) == ("127.0.0.1", 8080)
    assert cfg.ami.secret == "ami-secret-value"
    assert cfg.tokens == {"admin-token-0123456789": "admin"}  # the supervisor variable is unset
    assert [q.name for q in cfg.queues] == ["support", "sales"]
    modes = {a.profile.agent_id: a.mode for a in cfg.agents}
    assert modes == {"1001": "session", "1002": "session", "2001": "ring"}
    # The router's back-stop is on for live queues: ring timeout + 5 s.
    assert cfg.queues[0].ring_timeout_s == pytest.approx(20.0)
    assert "ami-secret-value" not in repr(cfg) and "admin-token" not in repr(cfg)


def _base(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "queues": [{"name": "support"}],
        "agents": [{"id": "a1", "skills": {"support": 1.0}}],
    }
    data.update(over)
    return data


@pytest.mark.parametrize(
    ("data", "where", "problem"),
    [
        (_base(http={"listen": "0.0.0.0"}), "c.toml: http.listen", "not host:port"),
        (_base(http={"listen": "example.com:80"}), "c.toml: http.listen", "not an IP address"),
        (_base(http={"listen": "127.0.0.1:70000"}), "c.toml: http.listen", "out of range"),
        (_base(ami={"secret": "x"}), "c.toml: ami.secret", "secrets do not go in the file"),
        (_base(ami={"prot": 1}), "c.toml: ami.prot", "unknown key"),
        (_base(queues=[]), "c.toml: queues", "at least one"),
        (_base(queues=[{"name": "q", "wrap_up": "3x"}]), "c.toml: queues[0].wrap_up", "duration"),
        (_base(agents=[{"id": "a b"}]), "c.toml: agents[0].id", "letters, digits"),
        (_base(agents=[{"id": "a", "mode": "psychic"}]), "c.toml: agents[0].mode", "not one of"),
        (_base(agents=[{"id": "a", "queues": ["nope"]}]), "c.toml: agents[0].queues", "unknown queue"),
        (_base(agents=[{"id": "a"}, {"id": "a"}]), "c.toml: agents", "same id"),
        (_base(tokens=[{"role": "god", "token_env": "T"}]), "c.toml: tokens[0].role", "unknown role"),
        (_base(acd={"call_selection": "random"}), "c.toml: acd.call_selection", "not one of"),
    ],
)
def test_bad_values_name_their_key(data: dict[str, object], where: str, problem: str) -> None:
    with pytest.raises(InputError) as err:
        parse_config(data, source="c.toml", env={})
    assert err.value.where == where
    assert problem in err.value.problem


def test_short_tokens_are_refused() -> None:
    data = _base(tokens=[{"role": "admin", "token_env": "T"}])
    with pytest.raises(InputError, match="shorter than 16"):
        parse_config(data, source="c.toml", env={"T": "short"})


def test_listen_forms() -> None:
    assert parse_listen("127.0.0.1:8080", "x") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:9000", "x") == ("::1", 9000)
    assert parse_listen("localhost:1", "x") == ("localhost", 1)


def test_store_and_outbound_settings() -> None:
    cfg = parse_config(_base(), source="c.toml", env={})
    assert cfg.store_url is None and cfg.outbound.trunk == "trunk"
    env = {"CCD_REDIS": "redis://:pw@127.0.0.1:6379/2", "T": "manager-token-0123456789"}
    data = _base(
        store={"url_env": "CCD_REDIS"},
        outbound={"trunk": "carrier-a", "max_channels": 30, "max_cps": 2.5, "pace_every": "500ms"},
        tokens=[{"role": "manager", "token_env": "T", "name": "mary"}],
    )
    cfg = parse_config(data, source="c.toml", env=env)
    assert cfg.store_url == "redis://:pw@127.0.0.1:6379/2" and "pw" not in repr(cfg)
    assert (cfg.outbound.max_channels, cfg.outbound.max_cps, cfg.outbound.pace_every_s) == (30, 2.5, 0.5)
    assert cfg.token_names == {"manager-token-0123456789": "mary"}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"store": {"url": "redis://:secret@host:6379"}}, "store.url: a URL with a password is a secret"),
        ({"store": {"url": "postgres://x"}}, "store.url: 'postgres://x': use memory: or redis://"),
        ({"store": {"url_env": "NOPE"}}, "store.url_env: environment variable NOPE is not set"),
        ({"outbound": {"max_channels": 0}}, "outbound.max_channels"),
        ({"outbound": {"trunk": "a b"}}, "outbound.trunk"),
        ({"outbound": {"speed": 1}}, "outbound.speed"),
    ],
)
def test_bad_store_and_outbound_settings(data: dict[str, object], problem: str) -> None:
    with pytest.raises(InputError) as err:
        parse_config(_base(**data), source="c.toml", env={})
    assert problem in str(err.value)
