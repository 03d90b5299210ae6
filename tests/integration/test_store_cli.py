"""The store commands run in-process against real files: init, users, contacts, backup."""

from __future__ import annotations

import asyncio
import io
import re
import sys
from pathlib import Path

import pytest

from connector.cli import build_parser, main
from connector.config import load_settings
from crm_sync.auth import resolve_token
from crm_sync.db import open_engine


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def _principal(url: str, token: str) -> object:
    engine = open_engine(url)
    try:
        async with engine.connect() as conn:
            return await resolve_token(conn, token)
    finally:
        await engine.dispose()


def test_init_users_tokens_contacts_backup_restore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONNECTOR_CONFIG", raising=False)
    code, out, _ = _run(capsys, "init", "--data-dir", "state")
    assert code == 0, out
    token = re.search(r"API token: (vc_\S+)", out)
    password = re.search(r"password: (\S+)", out)
    assert token and password
    settings = load_settings(tmp_path / "connector.toml")
    assert settings.storage.data_dir == tmp_path / "state"
    url = settings.storage.effective_database_url
    assert (tmp_path / "state" / "connector.db").exists()
    admin = asyncio.run(_principal(url, token.group(1)))
    assert getattr(admin, "role", None) == "admin"

    # a second init changes nothing and says how to get a token
    code, out, _ = _run(capsys, "init")
    assert code == 1 and "already initialised" in out.lower()
    code, out, _ = _run(capsys, "check-config")
    assert code == 0 and "configuration OK" in out

    code, out, _ = _run(
        capsys, "users", "add", "anna", "--name", "Anna K", "--role", "supervisor",
        "--team", "sales", "--ext", "main:101", "--ext", "cloud:201",
    )  # fmt: skip
    assert code == 0 and "Password (shown once)" in out
    code, _, err = _run(capsys, "users", "add", "bob", "--ext", "main:101")
    assert code == 1 and "already belongs to anna" in err
    code, _, err = _run(capsys, "users", "add", "bob", "--ext", "101")
    assert code == 2 and "PBX:EXTENSION" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("bobs-password\n"))
    code, out, _ = _run(capsys, "users", "add", "bob", "--password-stdin")
    assert code == 0 and "shown once" not in out
    code, out, _ = _run(capsys, "users", "list")
    assert code == 0 and "anna" in out and "bob" in out and "main:101" in out

    code, out, err = _run(capsys, "users", "token", "anna", "--name", "laptop")
    assert code == 0 and "shown once" in err
    anna_token = out.strip()
    assert anna_token.startswith("vc_") and "\n" not in anna_token
    who = asyncio.run(_principal(url, anna_token))
    assert getattr(who, "login", None) == "anna"
    token_id = re.search(r"revoke-token (\d+)", err)
    assert token_id
    code, out, _ = _run(capsys, "users", "tokens", "anna")
    assert code == 0 and "laptop" in out and anna_token not in out
    code, out, _ = _run(capsys, "users", "revoke-token", token_id.group(1))
    assert code == 0
    assert asyncio.run(_principal(url, anna_token)) is None
    code, _, err = _run(capsys, "users", "revoke-token", token_id.group(1))
    assert code == 1 and "no live token" in err
    code, _, err = _run(capsys, "users", "token", "nobody")
    assert code == 1 and "nobody" in err

    csv_file = tmp_path / "in.csv"
    csv_file.write_text(
        "ФИО;Телефон;Ответственный\nИван;8 916 123 45 67;anna\n;123;\nДубль;+79161234567;\n",
        encoding="utf-8",
    )
    code, out, _ = _run(capsys, "contacts", "import", str(csv_file))
    assert code == 0
    assert "3 rows: 1 imported, 1 merged" in out and "1 skipped" in out
    assert "line 3: the name is empty" in out
    code, _, err = _run(capsys, "contacts", "import", str(csv_file), "--map", "Nope=phone")
    assert code == 2 and "there is no column 'Nope'" in err
    code, _, err = _run(capsys, "contacts", "import", str(csv_file), "--map", "oops")
    assert code == 2 and "COLUMN=FIELD" in err
    exported = tmp_path / "out.csv"
    code, out, _ = _run(capsys, "contacts", "export", str(exported))
    assert code == 0 and "Exported 1 contacts" in out
    assert exported.read_text(encoding="utf-8").splitlines()[1] == "Иван,8 916 123 45 67,,,anna,,"

    code, out, _ = _run(capsys, "backup", "backups/")
    assert code == 0 and "integrity ok" in out
    copies = list((tmp_path / "backups").glob("*.db"))
    assert len(copies) == 1
    code, _, err = _run(capsys, "backup", str(copies[0]))
    assert code == 1 and "already exists" in err
    _run(capsys, "users", "add", "late")
    code, out, _ = _run(capsys, "restore", str(copies[0]))
    assert code == 0 and "1 contacts, 3 users" in out
    code, out, _ = _run(capsys, "users", "list")
    assert "late" not in out and "anna" in out


def test_every_help_text_renders(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["init"],
        ["users"],
        ["users", "add"],
        ["users", "list"],
        ["users", "token"],
        ["users", "tokens"],
        ["users", "revoke-token"],
        ["users", "password"],
        ["contacts"],
        ["contacts", "import"],
        ["contacts", "export"],
        ["backup"],
        ["restore"],
    ):
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args([*argv, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: connector " + " ".join(argv)), argv
