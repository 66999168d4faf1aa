"""The terminal front end: `python -m bot generate ...` and `python -m bot check`.

The same engine and checks as the Discord commands, with local files or links as inputs, a live
progress line on stderr and the video written to `--out`. Jobs live in their own SQLite file
(beside DATABASE_PATH) so a terminal run never picks up the Discord bot's jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from bot.config import Settings, settings_or_exit
from bot.engine import Delivery, Display, Engine, Job, JobState, JobUpdate, Store
from bot.errors import ApiError, InputError, StorageError, describe
from bot.frontends.common.intake import Ask, Owner, build_request
from bot.frontends.common.options import INPUTS, option_names, parameters
from bot.logs import setup_logging
from bot.media.fetch import guarded_session
from bot.media.prepare import MediaContext, MediaSource
from bot.provider import catalog
from bot.provider.catalog import Command
from bot.provider.client import DashScope


def _add_options(parser: argparse.ArgumentParser, command: Command) -> None:
    """The flags of one command, built from the catalog like the slash commands' choices."""
    many = command is Command.REFERENCE
    where = "a local file or an http(s) link" + (" (1-3 times)" if many else "")
    for flag, required in INPUTS[command].values():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, required=required,
                            action="append" if many else "store", help=where)
    names = [m.name for m in catalog.models_for(command)]
    parser.add_argument("--model", choices=names, help=f"default {names[0]}")
    if command is not Command.ANIMATE:
        parser.add_argument("--prompt", required=command is Command.REFERENCE)
        parser.add_argument("--negative-prompt", dest="negative_prompt")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--prompt-extend", dest="prompt_extend",
                            action=argparse.BooleanOptionalAction)
    parser.add_argument("--watermark", action=argparse.BooleanOptionalAction)
    for option in ("resolution", "duration", "size", "mode"):
        values = [str(v) for v in catalog.option_values(command, option)]
        if values and option != "obj_or_bg":
            parser.add_argument(f"--{option}", choices=values)
    if command is Command.REFERENCE:
        parser.add_argument("--roles", help="obj or bg per image, comma-separated: obj,bg")
    parser.add_argument("--out", required=True, type=Path, help="where to write the video")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = top.add_subparsers(dest="action", required=True)
    sub.add_parser("check", help="check the settings and that the API key works")
    gen = sub.add_parser("generate", help="make a video from the terminal")
    kinds = gen.add_subparsers(dest="command", required=True)
    for command in Command:
        _add_options(kinds.add_parser(command.value), command)
    return top


def source(value: str) -> MediaSource:
    if value.startswith(("http://", "https://")):
        return MediaSource.link(value)
    return MediaSource.local(Path(value).expanduser())


def ask_from(args: argparse.Namespace) -> Ask:
    command = Command(args.command)
    inputs: dict[str, list[MediaSource]] = {}
    for field, (flag, _) in INPUTS[command].items():
        given = getattr(args, flag)
        values = given if isinstance(given, list) else [given] if given else []
        inputs[field] = [source(v) for v in values]
    roles = getattr(args, "roles", None)
    options = parameters(
        **{k: getattr(args, k, None) for k in ("resolution", "size", "mode", "seed",
                                                "prompt_extend", "watermark", "duration")},
        obj_or_bg=[r.strip() for r in roles.split(",")] if roles else None)
    return Ask(command, args.model, getattr(args, "prompt", None),
               getattr(args, "negative_prompt", None), options,
               {k: v for k, v in inputs.items() if v}, option_names(command),
               display=Display(out=str(args.out.resolve())))


class FileDeliverer:
    """Delivers a terminal job by copying its video to the path given with --out."""

    async def deliver(self, job: Job, video: Path) -> Delivery:
        out = Path(job.display.out or "")
        await asyncio.to_thread(_copy, video, out)
        return Delivery(platform="cli", path=str(out))

    async def find_delivery(self, job: Job) -> Delivery | None:
        out = Path(job.display.out or "")
        video = Path(job.video_path or "")
        same = await asyncio.to_thread(_same_size, video, out)
        return Delivery(platform="cli", path=str(out)) if same else None


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def _same_size(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and a.stat().st_size == b.stat().st_size


class ProgressLine:
    """One line on stderr that rewrites itself on a terminal, and prints changes elsewhere."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.last = ""
        self.done = asyncio.Event()
        self.final: Job | None = None
        self.tty = sys.stderr.isatty()

    async def __call__(self, update: JobUpdate) -> None:
        if update.job.id != self.job_id:
            return
        text = self.render(update)
        if text != self.last:
            end = "\r" if self.tty and not update.job.terminal else "\n"
            shown = text.ljust(len(self.last)) if self.tty else text
            print(shown, end=end, file=sys.stderr, flush=True)
            self.last = text
        if update.job.terminal:
            self.final = update.job
            self.done.set()

    @staticmethod
    def render(update: JobUpdate) -> str:
        job = update.job
        parts = [f"job {job.id}: {job.state.value}"]
        if update.position:
            parts.append(f"#{update.position} in queue")
        parts.append(f"{int(update.elapsed_s)}s elapsed")
        if update.eta_s is not None and not job.terminal:
            parts.append(f"about {int(update.eta_s)}s left")
        return ", ".join(parts)


async def generate(args: argparse.Namespace, settings: Settings) -> int:
    db_path = settings.database_path.with_name("cli.sqlite3")
    async with aiohttp.ClientSession() as session, guarded_session(settings.trusted_hosts) as web:
        store = await Store.open(db_path)
        client = DashScope(session, settings.base_url, settings.dashscope_api_key,
                           timeout_s=settings.http_timeout_s)
        engine = Engine(store, client, settings)
        media = MediaContext(web, settings, engine.upload)
        try:
            return await _run_job(args, settings, engine, media)
        finally:
            await engine.stop()
            await store.close()


async def _run_job(args: argparse.Namespace, settings: Settings, engine: Engine,
                   media: MediaContext) -> int:
    try:
        request = await build_request(ask_from(args), Owner("cli", "local", "terminal", "local"),
                                      media, settings.region)
    except InputError as exc:
        print(f"error: {exc.option}: {exc.message} Nothing was submitted.", file=sys.stderr)
        return 2
    engine.set_deliverer("cli", FileDeliverer())
    await engine.start()
    update = await engine.submit(request)
    line = ProgressLine(update.job.id)
    engine.subscribe(line)
    engine.guard.on_failure(line.done.set)
    await line(update)
    await line.done.wait()
    if engine.guard.failure is not None:
        raise engine.guard.failure
    return _outcome(line.final)


def _outcome(job: Job | None) -> int:
    if job is not None and job.state is JobState.DELIVERED:
        print(f"saved {job.delivery and job.delivery.path}", file=sys.stderr)
        return 0
    if job is not None and job.error_code:
        print(f"error: {describe(job.error_code, job.error_message or '')}", file=sys.stderr)
    return 1


async def check(settings: Settings) -> int:
    """Prove the key works with one cheap authenticated call (listing the last hour's tasks),
    and that the database can be used (StorageError if not)."""
    await (await Store.open(settings.database)).close()
    async with aiohttp.ClientSession() as session:
        client = DashScope(session, settings.base_url, settings.dashscope_api_key,
                           timeout_s=settings.http_timeout_s, max_attempts=2)
        now = datetime.now(UTC)
        try:
            tasks = await client.list_tasks(start=now - timedelta(hours=1), end=now)
        except ApiError as exc:
            print(f"error: {settings.base_url}: {exc.user_message()}", file=sys.stderr)
            return 1
    print(f"ok: the API key works at {settings.base_url} ({settings.region}); "
          f"{len(tasks)} task(s) in the last hour")
    return 0


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    settings = settings_or_exit(need_chat=False, known_models=catalog.MODELS)
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level,
                  [settings.dashscope_api_key])
    try:
        if args.action == "check":
            return asyncio.run(check(settings))
        return asyncio.run(generate(args, settings))
    except StorageError as exc:
        print(f"error: wanbot cannot use its database {exc}", file=sys.stderr)
        return 1
