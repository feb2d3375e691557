"""check-config and render with a transformation: run once on the sample, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.cli import main
from tests.unit.test_cli import CONFIG, clean_environment, event_file

__all__ = ["clean_environment"]  # the autouse fixture applies here too

FIXTURES = Path(__file__).parents[1] / "fixtures" / "transformations"


def _config(tmp_path: Path, transformation: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + f"transformation: {transformation}\n", encoding="utf-8")
    return path


def test_check_config_runs_the_transformation_on_the_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, f"{{javascript: {FIXTURES / 'pii_mask.js'}}}")
    assert main(["check-config", "--config", str(config)]) == 0
    assert "transformation OK: javascript" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (
            "export function transformEvent(e) { return e.missing.field; }",
            "config error: transformation fails on the sample event: transformEvent threw"
            " TypeError",
        ),
        (
            "export function transformEvent(e) { while (true) {} }",
            "config error: transformation fails on the sample event: transformEvent ran over",
        ),
        (
            "export function transformEvent(e) { return fetch('https://x'); }",
            "config error: transformation.javascript: ",
        ),
        (
            "export function transformBatch(events) { return events; }",
            "config error: transformation.javascript: transformBatch is not supported",
        ),
    ],
)
def test_check_config_fails_a_bad_transformation_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, error: str
) -> None:
    script = tmp_path / "t.js"
    script.write_text(source, encoding="utf-8")
    config = _config(tmp_path, f"{{javascript: {script}}}")
    assert main(["check-config", "--config", str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(error)
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err


def test_both_languages_at_once_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "{javascript: a.js, python: 'b:c'}")
    assert main(["check-config", "--config", str(config)]) == 2
    assert "transformation: set python or javascript, not both" in capsys.readouterr().err


def test_render_runs_the_transformation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, f"{{python: {FIXTURES / 'event_filter.py'}}}")
    event = event_file(tmp_path, type="track", event="lobby_fps", userId="u1")
    assert main(["render", "--config", str(config), str(event)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('before transformation: {"type": "track", "event": "lobby_fps"')
    assert "skipped at transform (transformation)" in out
