import json
from pathlib import Path

import pytest

from apps.runtime import cabling_plan
from controller.config import ConfigError, FabricdConfig, load_config


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
        ("roles: {1: core}\n", "roles", "one of spine, leaf, super-spine"),
        ("roles: {null: spine}\n", "roles", "dpid 'None' is not an integer"),
        ("roles: {1.9: spine}\n", "roles", "dpid '1.9' is not an integer"),
        ("roles: {-5: spine}\n", "roles", "dpid -5 is not in 0..2^64-1"),
        ("roles: {1180591620717411303424: spine}\n", "roles", "not in 0..2^64-1"),
        ("link_speed_mbps: " + "9" * 5000 + "\n", "--config", "a value cannot be read"),
        ("a: " + "[" * 3000 + "\n", "--config", "nested deeper than 32 levels at line 1"),
        ("a: &x [1]\nb: *x\n", "--config", "aliases (*name) are not accepted at line 2"),
        ("log_level: loud\n", "log_level", "Input should be"),
        ("link_speed_mbps: -3\n", "link_speed_mbps", "greater than 0"),
        ("[1, 2]\n", "--config", "mapping"),
        ("a: [\n", "--config", "not valid YAML"),
        ("cluster: {etcd: ['http://127.0.0.1:2379']}\n", "cluster", "node_id is needed"),
        ("cluster: {etcd: ['127.0.0.1:2379'], node_id: a}\n", "cluster.etcd",
         "entry 0: expected http(s)://HOST:PORT"),
        ("cluster: {etcd: ['http://h:x'], node_id: a}\n", "cluster.etcd", "entry 0"),
        ("cluster: {node_id: 'a b'}\n", "cluster.node_id", "should match pattern"),
        ("cluster: {etcd: ['http://h:1'], node_id: a, etcd_cert: c.pem}\n", "cluster",
         "go together"),
        ("cluster: {lease_ttl: 0}\n", "cluster.lease_ttl", "greater than or equal to 1"),
        ("cluster: {etcd: ['http://h:1'], node_id: a}\n", "cluster",
         "http://h:1 is plain http: whoever reaches it controls the cluster"),
        ("cluster: {etcd: ['https://h:1'], node_id: a}\n", "cluster",
         "etcd needs this instance's client certificate"),
        ("cluster: {etcd: ['http://h:1'], node_id: a, etcd_ca: ca.pem, insecure_etcd: true}\n",
         "cluster", "apply to https:// endpoints; http://h:1 is plain http"),
        ("cluster: {etcd: ['https://h:1'], node_id: a, etcd_cert: /no/c.pem, "
         "etcd_key: /no/c.key}\n", "cluster", "etcd_cert: no such file: /no/c.pem"),
        ("cluster: {peer_address: 'h:1'}\n", "cluster.peer_address", "not an IP address"),
        ("cluster: {peer_address: '127.0.0.1'}\n", "cluster.peer_address",
         "expected HOST:PORT"),
        ("openflow: {port: 9464}\n", "", "metrics.address 127.0.0.1:9464 takes the port "
         "of openflow.port 0.0.0.0:9464"),
        ("metrics: {address: '127.0.0.1:50051'}\n", "", "takes the port of api.address"),
        ("api: {address: 'localhost:7000'}\nmetrics: {address: '127.0.0.1:7000'}\n", "",
         "takes the port of api.address"),
        ("cluster: {etcd: ['http://h:1'], node_id: a, peer_address: '0.0.0.0:6653', "
         "insecure_etcd: true}\n", "",
         "cluster.peer_address 0.0.0.0:6653 takes the port of openflow.port"),
        ("watchdog_seconds: 10\nwatchdog_exit_seconds: 5\n", "", "watchdog_exit_seconds (5) "
         "must be 0 (never) or at least watchdog_seconds (10)"),
        ("openflow: {punt_backlog: 0}\n", "openflow.punt_backlog", "greater than or equal"),
        ("openflow: {allowed_dpids: [1, -5]}\n", "openflow.allowed_dpids",
         "a datapath id is 0..2^64-1, got -5"),
        ("openflow: {allowed_dpids: [18446744073709551616]}\n", "openflow.allowed_dpids",
         "0..2^64-1"),
        ("openflow: {allowed_dpids: [1.9]}\n", "openflow.allowed_dpids.0", "integer"),
        ("openflow: {claim_timeout: 0}\n", "openflow.claim_timeout", "greater than"),
        ("openflow: {tls: {cert: /nonexistent.pem, key: k, ca: c}}\n", "openflow.tls",
         "cert: no such file: /nonexistent.pem"),
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


def test_cabling_plan(tmp_path):
    cfg = load_config(write(tmp_path, "cabling:\n  - ['1001:1', '0x7d1:1']\n"))
    (cable,) = cabling_plan(cfg)
    assert (cable.a.dpid, cable.a.port, cable.b.dpid, cable.b.port) == (1001, 1, 2001, 1)


@pytest.mark.parametrize(
    "plan,reason",
    [
        ("[['1001', '2001:1']]", "not DPID:PORT"),
        ("[['1001:x', '2001:1']]", "integers"),
        ("[['1001:1', '1001:2']]", "both ends on switch 1001"),
        ("[['1001:1', '2001:1'], ['1001:1', '2002:1']]", "cabled twice"),
        ("[['1001:1']]", "cabling.0"),
    ],
)
def test_bad_cabling_plan(tmp_path, plan, reason):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, f"cabling: {plan}\n"))
    assert err.value.key.startswith("cabling")
    assert reason in str(err.value)


def test_listeners_may_share_a_port_on_distinct_addresses_or_when_off():
    cfg = load_config(None, {"api.address": "127.0.0.1:7000", "metrics.address": "127.0.0.2:7000"})
    assert cfg.metrics.address == "127.0.0.2:7000"
    load_config(None, {"metrics.enabled": False, "metrics.address": "127.0.0.1:50051"})
    load_config(None, {"cluster.peer_address": "127.0.0.1:6653"})  # no etcd: not started


def test_shipped_example_config_is_written_from_the_model():
    """config/fabricd.example.yaml is `make config-example`'s output: a setting added,
    removed or redescribed in controller/config.py without regenerating it fails here."""
    from controller.config_example import render

    shipped = (Path(__file__).parents[2] / "config" / "fabricd.example.yaml").read_text()
    assert shipped == render(), "config/fabricd.example.yaml is stale: run make config-example"
    example = load_config(Path(__file__).parents[2] / "config" / "fabricd.example.yaml")
    assert example == FabricdConfig()  # (every value in it is the default)


def test_openflow_tls_material_is_checked_at_load(tmp_path):
    """A certificate that is not one, or a key that does not match it, names the file."""
    from mininet_topos.certs import make_test_certs

    certs = make_test_certs(tmp_path)
    good = {"cert": certs["server.pem"], "key": certs["server.key"], "ca": certs["ca.pem"]}
    cfg = load_config(write(tmp_path, json.dumps({"openflow": {"tls": good}}, default=str)))
    assert cfg.openflow.tls.ca == str(certs["ca.pem"])
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    for bad, named in (({"cert": junk}, f"cert {junk}"),
                       ({"key": certs["client.key"]}, f"with key {certs['client.key']}"),
                       ({"ca": junk}, f"ca {junk}")):
        doc = {**good, **bad}
        with pytest.raises(ConfigError) as err:
            load_config(write(tmp_path, json.dumps({"openflow": {"tls": doc}}, default=str)))
        assert err.value.key == "openflow.tls" and named in err.value.reason, err.value


def test_a_bad_api_certificate_names_its_file_at_load(tmp_path):
    """It said "Failed to bind to address" when the API started (issue 26)."""
    from mininet_topos.certs import make_test_certs

    certs = make_test_certs(tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    good = {"cert": str(certs["server.pem"]), "key": str(certs["server.key"])}
    assert load_config(None, {"api.tls": good}).api.tls is not None
    with pytest.raises(ConfigError) as err:
        load_config(None, {"api.tls": {**good, "cert": str(junk)}})
    assert err.value.key == "api.tls" and f"cert {junk}" in err.value.reason
    with pytest.raises(ConfigError) as err:
        load_config(None, {"api.tls": {**good, "client_ca": str(junk)}})
    assert f"ca {junk}" in err.value.reason
