"""Private files (Slack's): fetched with a bearer token that goes to the file's own origin only,
never after a redirect to another origin; a sign-in page instead of the file is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.errors import InputError
from bot.media.fetch import Bearer, fetch_bytes, guarded_session, origin_of

TOKEN = "xoxb-test-token"
SIGN_IN = "<!DOCTYPE html><html><body>Sign in to Slack</body></html>"


class FileHost:
    """Serves /file to the right token, a sign-in page to anyone else; /away redirects to
    `elsewhere`; records the Authorization header of every request."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        self.elsewhere = ""
        app = web.Application()
        app.router.add_get("/file", self._file)
        app.router.add_get("/away", self._away)
        self.server = TestServer(app, host="127.0.0.1")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"

    async def _file(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") == f"Bearer {TOKEN}":
            return web.Response(body=b"PNGDATA", content_type="image/png")
        return web.Response(text=SIGN_IN, content_type="text/html")

    async def _away(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers.get("Authorization"))
        raise web.HTTPFound(self.elsewhere)


@pytest.fixture
async def hosts() -> AsyncIterator[tuple[FileHost, FileHost]]:
    slack, other = FileHost(), FileHost()
    await slack.server.start_server()
    await other.server.start_server()
    yield slack, other
    await slack.server.close()
    await other.server.close()


async def fetch(url: str, bearer: Bearer) -> bytes:
    async with guarded_session(frozenset({"127.0.0.1"})) as session:
        return await fetch_bytes(session, url, option="image", max_bytes=10_000, timeout_s=5,
                                 bearer=bearer)


async def test_the_token_reaches_the_files_origin(hosts: tuple[FileHost, FileHost]) -> None:
    """With the token, the file's bytes."""
    slack, _ = hosts
    bearer = Bearer(origin_of(slack.url("/")), TOKEN)
    assert await fetch(slack.url("/file"), bearer) == b"PNGDATA"
    assert slack.seen == [f"Bearer {TOKEN}"]


async def test_a_sign_in_page_is_an_authorisation_error(hosts: tuple[FileHost, FileHost]) -> None:
    """A wrong token gets Slack's 200 HTML sign-in page: refused, not taken for an image."""
    slack, _ = hosts
    with pytest.raises(InputError) as info:
        await fetch(slack.url("/file"), Bearer(origin_of(slack.url("/")), "xoxb-wrong"))
    assert "sign in" in info.value.message


async def test_no_token_after_a_redirect_to_another_origin(
    hosts: tuple[FileHost, FileHost],
) -> None:
    """A redirect to another origin (another port counts) is followed without the token."""
    slack, other = hosts
    slack.elsewhere = other.url("/file")
    with pytest.raises(InputError):
        await fetch(slack.url("/away"), Bearer(origin_of(slack.url("/")), TOKEN))
    assert slack.seen == [f"Bearer {TOKEN}"] and other.seen == [None]


async def test_the_token_never_goes_to_a_typed_link(hosts: tuple[FileHost, FileHost]) -> None:
    """A bearer for Slack's origin adds nothing to a request for another origin."""
    slack, other = hosts
    with pytest.raises(InputError):
        await fetch(other.url("/file"), Bearer(origin_of(slack.url("/")), TOKEN))
    assert other.seen == [None]


def test_the_token_is_not_in_the_repr() -> None:
    """Logs that show a bearer show no secret."""
    assert TOKEN not in repr(Bearer("https://files.slack.com", TOKEN))
