"""The local admin token file: made private, refused when others can read it or when
the token in it is short."""

from __future__ import annotations

import stat

import pytest

from apps.api.auth import load_or_create_token


def test_a_token_is_made_private_once_and_then_read(tmp_path):
    path = tmp_path / "dir" / "api-token"
    token, made = load_or_create_token(path)
    assert made and len(token) >= 16 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == (token, False)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_token_file_others_can_open_is_refused_naming_the_fix(tmp_path, mode):
    path = tmp_path / "api-token"
    path.write_text("x" * 32 + "\n")
    path.chmod(mode)
    with pytest.raises(RuntimeError) as err:
        load_or_create_token(path)
    assert f"mode {mode:o}" in str(err.value) and f"chmod 600 {path}" in str(err.value)
    path.chmod(0o600)
    assert load_or_create_token(path) == ("x" * 32, False)


def test_a_short_token_is_refused(tmp_path):
    path = tmp_path / "api-token"
    path.write_text("short\n")
    path.chmod(0o600)
    with pytest.raises(RuntimeError, match="shorter than 16"):
        load_or_create_token(path)


def test_the_cluster_secret_file_is_private_long_and_gives_one_key(tmp_path):
    """Every instance given the same file derives the same LLDP key (nothing secret is
    kept in etcd); a file others may read, or a short secret, is refused."""
    from types import SimpleNamespace

    from controller.daemon_cluster import cluster_file_key

    f = tmp_path / "secret"
    f.write_text("s" * 64 + "\n")
    f.chmod(0o600)
    key = cluster_file_key(SimpleNamespace(secret_file=str(f)))
    assert len(key) == 32 and b"s" * 32 not in key
    assert cluster_file_key(SimpleNamespace(secret_file=str(f))) == key
    assert cluster_file_key(SimpleNamespace(secret_file=None)) is None
    f.chmod(0o644)
    with pytest.raises(RuntimeError, match="open to other users .* chmod 600"):
        cluster_file_key(SimpleNamespace(secret_file=str(f)))
    f.write_text("short\n")
    f.chmod(0o600)
    with pytest.raises(RuntimeError, match="shorter than 32 characters"):
        cluster_file_key(SimpleNamespace(secret_file=str(f)))
