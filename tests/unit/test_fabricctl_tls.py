"""fabricctl does not send the API token in clear to another host unless told to."""

from __future__ import annotations

import pytest

from controller.cli import fabricctl
from controller.cli.client import local_target


@pytest.mark.parametrize("server, local", [
    ("127.0.0.1:50051", True), ("127.8.9.1:1", True), ("localhost:50051", True),
    ("[::1]:50051", True), ("unix:/run/aifabric.sock", True),
    ("10.0.0.5:50051", False), ("[2001:db8::1]:50051", False), ("ctl.example:50051", False),
    ("0.0.0.0:50051", False),
])
def test_which_targets_are_this_host(server, local):
    assert local_target(server) is local


def test_a_token_is_not_sent_in_clear_to_another_host(capsys):
    rc = fabricctl.main(["--server", "192.0.2.7:50051", "--token", "t" * 24, "status"])
    err = capsys.readouterr().err
    assert rc == 2 and "not sending the API token in clear to 192.0.2.7:50051" in err
    assert "--ca" in err and "--insecure-api" in err


@pytest.mark.parametrize("extra", [["--insecure-api", "--token", "t" * 24],
                                   ["--token", ""]])
def test_told_so_or_with_no_token_it_tries(capsys, extra):
    """(192.0.2.0/24 is for documentation: nothing answers, the call times out)"""
    rc = fabricctl.main(["--server", "192.0.2.7:50051", "--timeout", "0.2", *extra,
                         "status"])
    err = capsys.readouterr().err
    assert rc == 1 and "not sending" not in err and "192.0.2.7:50051" in err, err
