import pytest

from controller.config import ConfigError, load_config


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults():
    cfg = load_config(None)
    assert cfg.openflow.port == 6653 and cfg.api.address == "127.0.0.1:50051"
    assert cfg.qos.enabled and cfg.te.enabled and cfg.link_speed_mbps is None


def test_file_and_overrides(tmp_path):
    p = write(tmp_path, "openflow: {port: 7000}\nroles: {'0x3e9': spine, 2001: leaf}\n")
    cfg = load_config(p, {"api.address": "127.0.0.1:9", "te.enabled": False})
    assert cfg.openflow.port == 7000 and cfg.api.address == "127.0.0.1:9"
    assert cfg.roles == {1001: "spine", 2001: "leaf"} and not cfg.te.enabled


@pytest.mark.parametrize(
    "text,key,reason",
    [
        ("openflow: {port: 0}\n", "openflow.port", "greater than or equal to 1"),
        ("bogus: 1\n", "bogus", "unknown key"),
        ("api: {address: nowhere}\n", "api.address", "HOST:PORT"),
        ("api: {address: 'example.com:1'}\n", "api.address", "not an IP address"),
        ("discovery: {lldp_interval: 2, link_timeout: 1}\n", "discovery", "longer than"),
        ("roles: {abc: spine}\n", "roles", "not an integer"),
        ("roles: {1: core}\n", "roles", "spine or leaf"),
        ("log_level: loud\n", "log_level", "Input should be"),
        ("link_speed_mbps: -3\n", "link_speed_mbps", "greater than 0"),
        ("[1, 2]\n", "--config", "mapping"),
        ("a: [\n", "--config", "not valid YAML"),
    ],
)
def test_bad_config_names_key_and_reason(tmp_path, text, key, reason):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert err.value.key == key
    assert reason in err.value.reason


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_example_config_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config" / "fabricd.example.yaml"
    assert load_config(example) == load_config(None)
