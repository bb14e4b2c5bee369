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
