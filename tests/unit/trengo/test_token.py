"""Token rotation: the token is re-read from the source it came from, whitespace stripped."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import httpx
import pytest

from processor.config import LogConfig, load_settings
from processor.logging import HANDLER_NAME, configure_logging
from processor.trengo.endpoints import search_contacts
from processor.trengo.token import TokenRotation, token_reader
from tests.unit.trengo.fake_trengo import make_client
from tests.unit.trengo.simulated_time import run_simulated


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRENGO_"):
            monkeypatch.delenv(name)


def config(tmp_path: Path, trengo: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f'{trengo}destination: {{channelId: "1"}}\n', encoding="utf-8")
    return path


def test_a_token_file_is_re_read_and_stripped(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token\n", encoding="utf-8")
    settings = load_settings(config(tmp_path, f"trengo: {{api_token_file: {token_file}}}\n"))
    read = token_reader(settings)
    assert read is not None and read() == "old-token"

    token_file.write_text("  new-token \n", encoding="utf-8")
    assert read() == "new-token"
    token_file.unlink()  # mid-rotation: nothing to read, keep the token in use
    assert read() is None


def test_the_environment_token_is_re_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRENGO_API_TOKEN", "env-token")
    read = token_reader(load_settings(config(tmp_path)))
    assert read is not None
    monkeypatch.setenv("TRENGO_API_TOKEN", "rotated\n")
    assert read() == "rotated"


def test_a_token_written_in_the_yaml_has_no_source_to_re_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text('destination: {apiToken: yaml-token, channelId: "1"}\n', encoding="utf-8")
    monkeypatch.setenv("TRENGO_PROCESSOR_TRENGO__API_TOKEN_FILE", str(tmp_path / "none"))
    assert token_reader(load_settings(path)) is None


def test_a_reload_sends_the_next_calls_with_the_new_token() -> None:
    tokens = ["old-token", "old-token", "new-token", "", None]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"data": []})

    async def main() -> list[bool]:
        async with make_client(handler) as client:
            client.use_token("old-token")
            rotation = TokenRotation(client, lambda: tokens.pop(0))
            reloads = []
            for _ in range(len(tokens)):
                reloads.append(rotation.reload())
                await client.send(search_contacts("x"))
            return reloads

    assert run_simulated(main()) == [False, False, True, False, False]
    assert seen == ["Bearer old-token"] * 2 + ["Bearer new-token"] * 3


def test_without_a_source_reload_changes_nothing() -> None:
    async def main() -> bool:
        async with make_client(lambda _request: httpx.Response(200)) as client:
            return TokenRotation(client, None).reload()

    assert asyncio.run(main()) is False


def test_a_rotated_token_is_redacted_from_the_logs(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    level = root.level
    configure_logging(LogConfig(format="json"), secrets=["old-token"])
    try:

        async def main() -> None:
            async with make_client(lambda _request: httpx.Response(200)) as client:
                client.use_token("old-token")
                assert TokenRotation(client, lambda: "rotated-token-42").reload()

        asyncio.run(main())
        logging.getLogger("test").error("sent with rotated-token-42 after old-token")
    finally:
        for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
            root.removeHandler(handler)
        root.setLevel(level)

    output = capsys.readouterr().err
    assert "rotated-token-42" not in output and "old-token" not in output
    assert "sent with *** after ***" in output
