from __future__ import annotations

from bot.store import JobState
from tests.discord_support import Stack, png
from tests.fakediscord import FakeUpload

pytest_plugins = ("tests.discord_support",)


async def test_smoke(wan: Stack) -> None:
    up = FakeUpload("a.png", png(), "image/png", 640, 480)
    record = await wan.fake.slash("kf2v", {"prompt": "a cat"}, attachments={"first_frame": up, "last_frame": up})
    cb = await record.responded()
    print("callback", cb.type, cb.latency_s, cb.accepted)
    fl = await record.wait_followups(1)
    print("followup", fl[0].content)
    job = await wan.wait_state(JobState.DELIVERED)
    print(job)
    for r in wan.fake.requests:
        print(r.method, r.path, r.status, r.json if r.method != "GET" else "")
