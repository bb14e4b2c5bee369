"""``fabricd --check-config``: validates the configuration and the files it names
without starting anything; 0 and a summary, or 2 and the reason in one line."""

from __future__ import annotations

import json

from controller.daemon import check_config, main  # noqa: F401  (main: the real entry)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["--check-config", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_good_config_is_summed_up_and_nothing_starts(tmp_path, capsys):
    cfg = tmp_path / "f.yaml"
    cfg.write_text(json.dumps({"openflow": {"port": 7001}, "te": {"enabled": False}}))
    rc, out, err = run(capsys, "--config", str(cfg), "--state-file",
                       str(tmp_path / "state.json"), "--token-file", str(tmp_path / "t"))
    assert rc == 0 and err == ""
    assert out.startswith("fabricd: config OK: OpenFlow on 0.0.0.0:7001") and "TE off" in out
    assert not (tmp_path / "t").exists()  # (a token is not made by a check)


def test_what_start_up_would_refuse_is_refused_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("roles: {null: spine}\n")
    rc, _, err = run(capsys, "--config", str(bad))
    assert rc == 2 and err.count("\n") == 1 and "dpid 'None' is not an integer" in err
    state = tmp_path / "state.json"
    state.write_text("[" * 100000)
    rc, _, err = run(capsys, "--state-file", str(state), "--token-file",
                     str(tmp_path / "t"))
    assert rc == 2 and "not JSON" in err and err.count("\n") == 1
    token = tmp_path / "token"
    token.write_text("x" * 40)
    token.chmod(0o644)
    rc, _, err = run(capsys, "--token-file", str(token), "--state-file",
                     str(tmp_path / "none.json"))
    assert rc == 2 and "chmod 600" in err


def test_a_reload_applies_what_is_live_names_the_rest_and_survives_a_bad_file(
        tmp_path, caplog):
    import logging

    from controller.daemon import build_parser, config_from_args
    from controller.daemon_reload import changed_settings, reload_config

    cfg = tmp_path / "f.yaml"
    cfg.write_text("log_level: info\n")
    args = build_parser().parse_args(["--config", str(cfg)])
    current = [config_from_args(args)]
    root = logging.getLogger().level
    try:
        cfg.write_text("log_level: debug\nte: {enabled: false}\n")
        with caplog.at_level(logging.INFO, logger="aifabric.daemon"):
            reload_config(lambda: config_from_args(args), current)
        assert current[0].log_level == "debug" and current[0].te.enabled  # (not applied)
        assert "applied log_level" in caplog.text
        assert "te.enabled changed and need a restart: not applied" in caplog.text
        assert logging.getLogger().level == logging.DEBUG
        caplog.clear()
        cfg.write_text("roles: {null: spine}\n")
        with caplog.at_level(logging.INFO, logger="aifabric.daemon"):
            reload_config(lambda: config_from_args(args), current)
        assert "config error" in caplog.text and "nothing changed" in caplog.text
        assert current[0].log_level == "debug"
    finally:
        logging.getLogger().setLevel(root)
    assert changed_settings(current[0], current[0]) == []
