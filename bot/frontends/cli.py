"""The terminal front end: `python -m bot generate ...` and `python -m bot check`.

The same engine and checks as the Discord commands, with local files or links as inputs, a live
progress line on stderr and the video written to `--out`. Jobs live in their own SQLite file
(beside DATABASE_PATH) so a terminal run never picks up the Discord bot's jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from bot.config import Settings, settings_or_exit
from bot.engine import (
    ChainVideo,
    Delivery,
    Display,
    Engine,
    Job,
    JobRequest,
    JobState,
    JobUpdate,
    KeyPool,
    Post,
    Store,
)
from bot.errors import ApiError, InputError, StorageError, describe
from bot.frontends.common import extend
from bot.frontends.common.chains import Chains
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
    _add_extend(kinds.add_parser("extend", help="continue a finished clip from its last frame"))
    return top


def _add_extend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="parent", required=True, metavar="JOB",
                        help="the id of the job to continue (a terminal job, as printed)")
    parser.add_argument("--prompt", help="what happens next (default: the clip's own prompt)")
    parser.add_argument("--last-frame", dest="last_frame", metavar="FILE",
                        help="where the new clip ends: a local file or link (first/last-frame)")
    parser.add_argument("--out", required=True, type=Path,
                        help="where to write the new clip; the whole chain goes beside it "
                             "(NAME-chain.mp4)")


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
    """Delivers a terminal job by copying its video to the path given with --out, and an
    extension's chain video beside it (`chain_path`)."""

    def upload_limit(self, job: Job) -> None:
        return None  # a file of any size: the original, never re-encoded

    async def deliver(self, job: Job, video: Path) -> Delivery:
        out = Path(job.display.out or "")
        await asyncio.to_thread(_copy, video, out)
        return Delivery(platform="cli", path=str(out))

    async def find_delivery(self, job: Job) -> Delivery | None:
        out = Path(job.display.out or "")
        video = Path(job.video_path or "")
        same = await asyncio.to_thread(_same_size, video, out)
        return Delivery(platform="cli", path=str(out)) if same else None


    async def post_chain(self, job: Job, chain: ChainVideo) -> Post:
        out = chain_path(job)
        if chain.path is None:
            print(f"job {job.id}: no chain video: {chain.note}", file=sys.stderr)
            return Post(platform="cli")
        await asyncio.to_thread(_copy, Path(chain.path), out)
        return Post(platform="cli", message_id=str(out))

    async def find_chain(self, job: Job) -> Post | None:
        """The chain written before a crash: its file beside the clip, as large as ours (or
        ours is gone: then it was written)."""
        out = chain_path(job)
        ours = Path((job.chain and job.chain.path) or "")
        written = await asyncio.to_thread(
            lambda: out.exists() and (not ours.exists() or _same_size(ours, out)))
        return Post(platform="cli", message_id=str(out)) if written else None


def chain_path(job: Job) -> Path:
    """Where an extension's whole chain is written: beside its clip, NAME-chain.mp4."""
    out = Path(job.display.out or "chain.mp4")
    return out.with_name(f"{out.stem}-chain{out.suffix or '.mp4'}")


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
        engine = Engine(store, KeyPool.build(settings, session), settings)  # every key
        media = MediaContext(web, settings, engine.upload)
        try:
            return await _run_job(args, settings, engine, media)
        finally:
            await engine.stop()
            await store.close()


OWNER = Owner("cli", "local", "terminal", "local")


async def _request(args: argparse.Namespace, settings: Settings, engine: Engine,
                   media: MediaContext) -> JobRequest:
    """The request the command line asks for (InputError when it cannot be made)."""
    if args.command != "extend":
        return await build_request(ask_from(args), OWNER, media, settings.region)
    parent = await engine.store.get_job(args.parent.strip().lower())
    if parent is None:
        raise InputError("from", f"no job {args.parent} here (terminal jobs only).")
    if why := extend.refusal(parent):
        raise InputError("from", why)
    last = source(args.last_frame) if args.last_frame else None
    async with extend.last_frame(parent, media.media_pool) as frame:
        ask = extend.ask_for(parent, frame, prompt=args.prompt or parent.prompt, last_frame=last,
                             display=Display(out=str(args.out.resolve())))
        request = await build_request(ask, OWNER, media, settings.region)
    return dataclasses.replace(request, parent_id=parent.id)


async def _run_job(args: argparse.Namespace, settings: Settings, engine: Engine,
                   media: MediaContext) -> int:
    try:
        request = await _request(args, settings, engine, media)
    except InputError as exc:
        print(f"error: {exc.option}: {exc.message} Nothing was submitted.", file=sys.stderr)
        return 2
    deliverer = FileDeliverer()
    engine.set_deliverer("cli", deliverer)
    await engine.start()
    update = await engine.submit(request)
    line = ProgressLine(update.job.id)
    engine.subscribe(line)
    engine.guard.on_failure(line.done.set)
    await line(update)
    await line.done.wait()
    if engine.guard.failure is not None:
        raise engine.guard.failure
    if line.final is not None and line.final.parent_id and line.final.state is JobState.DELIVERED:
        chains = Chains(engine, engine.store, settings, "cli", deliverer)
        try:
            await chains.run(line.final)  # the chain video, before the process ends
        finally:
            await chains.close()
        line.final = await engine.store.get_job(line.final.id)
    return _outcome(line.final)


def _outcome(job: Job | None) -> int:
    if job is not None and job.state is JobState.DELIVERED:
        print(f"saved {job.delivery and job.delivery.path}", file=sys.stderr)
        if job.chain is not None and job.chain.post and job.chain.post.message_id:
            print(f"saved the whole chain ({job.chain.clips} clips, {job.chain.seconds:g} s) "
                  f"to {job.chain.post.message_id}", file=sys.stderr)
        print(f"continue it: python -m bot generate extend --from {job.id} --out NEXT.mp4",
              file=sys.stderr)
        return 0
    if job is not None and job.error_code:
        print(f"error: {describe(job.error_code, job.error_message or '')}", file=sys.stderr)
    return 1


async def check(settings: Settings) -> int:
    """Prove every key works with one cheap authenticated call each (listing the last hour's
    tasks), and that the database can be used (StorageError if not)."""
    await (await Store.open(settings.database)).close()
    pooled = len(settings.keys) > 1
    failed = 0
    async with aiohttp.ClientSession() as session:
        for key in settings.keys:
            client = DashScope(session, key.base_url, key.secret,
                               timeout_s=settings.http_timeout_s, max_attempts=2)
            name = f"API key {key.id}" if pooled else "the API key"
            now = datetime.now(UTC)
            try:
                tasks = await client.list_tasks(start=now - timedelta(hours=1), end=now)
            except ApiError as exc:
                print(f"error: {name} at {key.base_url}: {exc.user_message()}", file=sys.stderr)
                failed += 1
                continue
            print(f"ok: {name} works at {key.base_url} ({key.region}); "
                  f"{len(tasks)} task(s) in the last hour")
    return 1 if failed else 0


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    settings = settings_or_exit(need_chat=False, known_models=catalog.MODELS)
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level,
                  settings.secrets)
    try:
        if args.action == "check":
            return asyncio.run(check(settings))
        return asyncio.run(generate(args, settings))
    except StorageError as exc:
        print(f"error: wanbot cannot use its database {exc}", file=sys.stderr)
        return 1
