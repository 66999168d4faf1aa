"""What the simulator answers about tasks: one task (`GET /tasks/{id}`) and the task list.

A task query gives times as `YYYY-MM-DD HH:mm:ss.SSS` in UTC+8, like the provider's documents;
the list gives epoch milliseconds (`gmt_create`, `start_time`, `end_time`) and refuses a window
longer than 24 hours, as the developer guide says. Every time is the simulator's calendar, which
is the wall clock whatever the time scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.provider.catalog import BEIJING, expected_seconds
from bot.sim.media import INVALID, Refuse, fmt_time, rid
from bot.sim.state import SimConfig, SimTask

DAY_S = 86_400.0
MAX_WINDOW_S = DAY_S  # the longest start_time..end_time window the list accepts
EXTENDED = " Cinematic lighting, smooth camera motion, rich detail."
STARTED = frozenset({"RUNNING", "SUCCEEDED", "FAILED"})
ENDED = frozenset({"SUCCEEDED", "FAILED", "CANCELED"})
# The list's `region` field names the provider's region id, not our setting's word.
REGION_IDS = {"singapore": "ap-southeast-1", "beijing": "cn-beijing", "virginia": "us-east-1"}
FILTERS = ("model_name", "status", "api_key_id", "region")  # list filters matched exactly


# --- one task ------------------------------------------------------------------------------------


def task_answer(task: SimTask, now: float, config: SimConfig, root_url: str) -> dict[str, Any]:
    """The body of `GET /tasks/{id}` for a task the simulator knows."""
    status = task.status(now, config.ttl_s)
    out: dict[str, Any] = {"task_id": task.task_id, "task_status": status}
    payload: dict[str, Any] = {"request_id": rid(), "output": out}
    if status == "UNKNOWN":
        return payload
    out["submit_time"] = fmt_time(task.created)
    if status in STARTED:
        out["scheduled_time"] = fmt_time(task.scheduled)
    if status in ENDED:
        out["end_time"] = fmt_time(task.end_at)
    if status == "FAILED" and task.failure:
        out["code"], out["message"] = task.failure
    if status == "SUCCEEDED":
        out.update(_results(task, config.ttl_s, root_url))
        payload["usage"] = _usage(task)
    return payload


def unknown_answer(task_id: str) -> dict[str, Any]:
    """A task id never seen answers like an expired one."""
    return {"request_id": rid(), "output": {"task_id": task_id, "task_status": "UNKNOWN"}}


def _results(task: SimTask, ttl_s: float, root_url: str) -> dict[str, Any]:
    expires = int(task.end_at + ttl_s)
    url = f"{root_url}/results/{task.task_id}.mp4?Expires={expires}"
    fields: dict[str, Any] = {}
    node, (*parents, leaf) = fields, task.model.result_path
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = url
    if task.prompt:
        fields["orig_prompt"] = task.prompt
        if task.params.get("prompt_extend"):
            fields["actual_prompt"] = task.prompt + EXTENDED
    return fields


def _usage(task: SimTask) -> dict[str, Any]:
    seconds = round(expected_seconds(task.model, task.params, task.media_s))
    usage: dict[str, Any] = {"video_duration": seconds, "video_count": 1}
    if "2.1" in task.model.name:  # the 2.1 generation reports a ratio, later ones a tier
        usage["video_ratio"] = "standard"
    elif "resolution" in task.params:
        usage["SR"] = int(str(task.params["resolution"]).rstrip("P"))
    return usage


# --- the list ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    """A `GET /tasks` query, checked: one page of the tasks created in [start, end]."""

    page_no: int
    page_size: int
    start: float
    end: float
    filters: Mapping[str, str]

    @classmethod
    def parse(cls, query: Mapping[str, str], now: float) -> ListQuery:
        """Missing times mean the last 24 hours; a longer window is a 400, like the provider."""
        end = _time_param(query, "end_time")
        end = now if end is None else end
        start = _time_param(query, "start_time")
        start = end - MAX_WINDOW_S if start is None else start
        if end < start:
            raise Refuse(400, INVALID, "end_time must not be earlier than start_time.")
        if end - start > MAX_WINDOW_S:
            raise Refuse(400, INVALID, "The time range between start_time and end_time "
                         "cannot exceed 24 hours.")
        return cls(_int_param(query, "page_no", 1, 1_000_000),
                   _int_param(query, "page_size", 10, 100), start, end,
                   {k: query[k] for k in FILTERS if k in query})


def list_answer(tasks: Iterable[SimTask], query: ListQuery, now: float, config: SimConfig
                ) -> dict[str, Any]:
    """The body of `GET /tasks`: newest first, one page, with the totals."""
    rows = [summary(t, now, config) for t in tasks if query.start <= t.created <= query.end]
    rows = [r for r in rows if r["status"] != "UNKNOWN"
            and all(r[k] == v for k, v in query.filters.items())]
    rows.sort(key=lambda r: r["gmt_create"], reverse=True)
    size, first = query.page_size, (query.page_no - 1) * query.page_size
    return {"request_id": rid(), "data": rows[first : first + size], "total": len(rows),
            "total_page": math.ceil(len(rows) / size), "page_no": query.page_no,
            "page_size": size}


def summary(task: SimTask, now: float, config: SimConfig) -> dict[str, Any]:
    """One `data[]` item of the list: `status` (not task_status) and epoch-ms times."""
    status = task.status(now, config.ttl_s)
    return {
        "task_id": task.task_id, "status": status, "model_name": task.api_name,
        "gmt_create": _ms(task.created),
        "start_time": _ms(task.scheduled) if status in STARTED else None,
        "end_time": _ms(task.end_at) if status in ENDED else None,
        "request_id": task.request_id, "api_key_id": task.account or config.api_key_id,
        "region": REGION_IDS.get(config.region, config.region),
    }


def _ms(ts: float | None) -> int:
    return round((ts or 0) * 1000)


def _int_param(query: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = query.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= high:
        raise Refuse(400, INVALID, f"{name} must be a whole number from 1 to {high}.")
    return value


def _time_param(query: Mapping[str, str], name: str) -> float | None:
    """`YYYYMMDDhhmmss` in UTC+8, as the SDK documents it (e.g. 20230420000000)."""
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return datetime.strptime(raw, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING).timestamp()
    except ValueError as exc:
        raise Refuse(400, INVALID, f"{name} must look like YYYYMMDDhhmmss.") from exc
