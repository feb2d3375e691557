"""The ``trengo-processor`` command line.

User mistakes (a bad config, a missing file) print one line and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from types import ModuleType

from processor.config import (
    CONSENT_KEYS,
    ConfigError,
    Settings,
    load_settings,
    source_type_used,
)
from processor.engine.replay import ReplayOptions, replay_dead_letters
from processor.engine.shutdown import install_stop_signals
from processor.logging import configure_logging
from processor.online_check import CheckLine, check_account
from processor.pipeline.templates import EventTemplates, TemplateConfigError
from processor.pipeline.transform import check_on_sample, load_transformation
from processor.render import render_event
from processor.runner import Processor, tune_garbage_collector
from processor.trengo import TrengoClient

EXIT_USAGE = 2
EXIT_REPLAY_FAILED = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m processor``."""
    parser = _parser()
    args, sandbox_arguments = parser.parse_known_args(argv)
    if sandbox_arguments and args.command is not _sandbox:
        parser.error(f"unrecognized arguments: {' '.join(sandbox_arguments)}")
    args.sandbox_arguments = sandbox_arguments
    try:
        code: int = args.command(args)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except DevkitMissingError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


def load_checked_settings(path: Path | None) -> Settings:
    """Load the config and compile its templates; every problem becomes a ConfigError."""
    settings = load_settings(path)
    try:
        EventTemplates(settings.destination)
    except TemplateConfigError as error:
        raise ConfigError(f"{error.key}: {error.message}") from None
    return settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trengo-processor",
        description="Deliver RudderStack identify/track events from Kafka to Trengo.",
    )
    verbs = parser.add_subparsers(required=True, metavar="COMMAND")

    run = verbs.add_parser("run", help="consume the topic and deliver to Trengo")
    _config_argument(run)
    run.set_defaults(command=_run)

    check = verbs.add_parser("check-config", help="validate the config and its templates")
    _config_argument(check)
    check.add_argument(
        "--online",
        action="store_true",
        help="also prove token, channel, custom fields and labels with read-only calls to Trengo",
    )
    check.set_defaults(command=_check_config)

    render = verbs.add_parser("render", help="dry run: the plan and requests for one event")
    _config_argument(render)
    render.add_argument("event", type=Path, help="a RudderStack event as a JSON file")
    render.set_defaults(command=_render)

    dlq = verbs.add_parser("dlq", help="dead-letter topic tools")
    dlq_verbs = dlq.add_subparsers(required=True, metavar="ACTION")
    replay = dlq_verbs.add_parser("replay", help="re-publish dead letters to the source topic")
    _config_argument(replay)
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    replay.add_argument("--limit", type=int, default=None, help="replay at most N records")
    replay.add_argument(
        "--filter-stage",
        choices=["decode", "validate", "map", "deliver"],
        help="replay only dead letters of this stage",
    )
    replay.add_argument(
        "--include-replayed",
        action="store_true",
        help="also replay events that already failed after an earlier replay",
    )
    replay.set_defaults(command=_dlq_replay)

    # The sandbox's flags live in the devkit, which ``run`` must not import: it parses them itself.
    sandbox = verbs.add_parser(
        "sandbox", help="run the local fake Trengo API (--help lists its flags)", add_help=False
    )
    sandbox.set_defaults(command=_sandbox)

    demo = verbs.add_parser("demo", help="embedded Kafka + sandbox + sample events, end to end")
    demo.add_argument("--events", type=int, default=None, help="how many sample events")
    demo.set_defaults(command=_demo)
    return parser


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML config file (every key can also come from TRENGO_PROCESSOR_* variables)",
    )


def _run(args: argparse.Namespace) -> int:
    settings = load_checked_settings(args.config)
    configure_logging(settings.log, secrets=settings.secrets)
    tune_garbage_collector()
    asyncio.run(_run_until_signal(settings))
    return 0


async def _run_until_signal(settings: Settings) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)
    await Processor(settings).run(stop)


def _check_config(args: argparse.Namespace) -> int:
    settings = load_checked_settings(args.config)
    destination = settings.destination
    print(
        f"config OK: topic {settings.kafka.topic} → channel {destination.channelId} "
        f"({destination.channelIdentifier}), dedup {'on' if destination.enableDedup else 'off'}, "
        f"{len(destination.eventTemplateMap)} event templates"
    )
    for key in ("connectionMode", *CONSENT_KEYS):
        source_type = source_type_used(getattr(destination, key))
        if source_type is not None:
            print(f"destination.{key}: using the '{source_type}' entry")
    transformation = load_transformation(settings.transformation)
    if transformation is not None:
        check_on_sample(transformation)
        print(f"transformation OK: {_transformation_source(settings)} runs on the sample event")
    if not args.online:
        return 0
    lines = asyncio.run(_check_online(settings))
    for line in lines:
        print(line.render())
    return 0 if all(line.passed for line in lines) else EXIT_USAGE


def _transformation_source(settings: Settings) -> str:
    config = settings.transformation
    return f"python {config.python}" if config.python else f"javascript {config.javascript}"


async def _check_online(settings: Settings) -> list[CheckLine]:
    async with TrengoClient(
        settings.trengo.base_url,
        settings.api_token,
        timeout_seconds=settings.trengo.timeout_seconds,
        requests_per_minute=settings.trengo.requests_per_minute,
    ) as client:
        return await check_account(settings, client)


def _render(args: argparse.Namespace) -> int:
    settings = load_checked_settings(args.config)
    try:
        event_bytes = args.event.read_bytes()
    except OSError as error:
        print(f"{args.event}: cannot read event file ({error.strerror})", file=sys.stderr)
        return EXIT_USAGE
    print(render_event(event_bytes, settings, load_transformation(settings.transformation)))
    return 0


def _dlq_replay(args: argparse.Namespace) -> int:
    settings = load_checked_settings(args.config)
    options = ReplayOptions(
        dry_run=args.dry_run,
        limit=args.limit,
        stage=args.filter_stage,
        include_replayed=args.include_replayed,
    )
    summary = replay_dead_letters(settings.kafka, options, progress=sys.stderr)
    print(summary.describe())
    return EXIT_REPLAY_FAILED if summary.failed else 0


class DevkitMissingError(Exception):
    """A developer command ran where the devkit (demo, sandbox, broker) is not installed."""


def _devkit(module: str, command: str) -> ModuleType:
    """Import a devkit module on demand: production installs do not carry the devkit."""
    try:
        return import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or not f"{module}.".startswith(f"{error.name}."):
            raise
        raise DevkitMissingError(
            f"trengo-processor {command} needs the devkit, which production installs leave out: "
            "run `make venv`, or pip install -e ./devkit from a clone of the repository"
        ) from None


def _sandbox(args: argparse.Namespace) -> int:
    sandbox = _devkit("devkit.sandbox.trengo", "sandbox")
    code: int = sandbox.main(args.sandbox_arguments)
    return code


def _demo(args: argparse.Namespace) -> int:
    demo = _devkit("devkit.demo", "demo")
    code: int = demo.run_demo(event_count=args.events)
    return code
