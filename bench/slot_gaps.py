"""Where a slot's time goes between one task's end and the next task's start (bench/engine.py).

In the simulator's reject mode a model's next task can start only once the engine has seen a
slot free, so each turnover of a slot costs: the detection delay (the task ended; the engine
sees it), the admission (seen; the next job admitted), the send (admitted; its create sent) and
the create (sent; the simulator made the task). The ideal the bench compares with has none of
these, so their sum per turnover, over the time a task takes, is what makespan/ideal loses.
"""

from __future__ import annotations

import statistics
from typing import Any

from bot.engine import Job
from bot.sim.server import Simulator

STEPS = ("detect", "admit", "send", "create")


def turnovers(jobs: list[Job], sim: Simulator, slots: dict[str, int]) -> list[dict[str, float]]:
    """One row per slot turnover: the clock seconds each step took (STEPS), and `idle` (from a
    task's end to the start of the next on its slot). A task the provider held on deck took
    its slot the moment one came free: no steps, no idle time."""
    by_task = {j.task_id: j for j in jobs if j.task_id}
    rows = []
    for model, count in slots.items():
        tasks = sorted((t for t in sim.tasks.values() if t.model.name == model
                        and t.task_id in by_task and t.admitted is not None),
                       key=lambda t: t.admitted or 0)
        held = tasks[:count]  # what each slot holds now; the next task takes the first to end
        for task in tasks[count:]:
            before = min(held, key=lambda t: t.end_at)
            held.remove(before)
            held.append(task)
            done, job = by_task[before.task_id], by_task[task.task_id]
            row = dict.fromkeys(STEPS, 0.0)
            if (task.admitted or 0) <= task.created and job.sends:  # sent to a free slot
                marks = [before.end_at, done.finished_at or 0, job.submitted_at or 0,
                         job.sends[-1], task.created]
                row = {step: marks[i + 1] - marks[i] for i, step in enumerate(STEPS)}
            row["idle"] = max(0.0, (task.admitted or 0) - before.end_at)
            rows.append(row)
    return rows


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean seconds per turnover of each step, and of the whole idle time."""
    if not rows:
        return {step: 0.0 for step in (*STEPS, "idle")} | {"turnovers": 0}
    result: dict[str, float] = {key: statistics.fmean(r[key] for r in rows)
                                for key in (*STEPS, "idle")}
    result["turnovers"] = len(rows)
    return result


def gap_table(gaps: dict[str, dict[str, Any]]) -> str:
    """One row per distribution and policy: mean seconds per slot turnover, by step."""
    lines = [f"{'distribution':16}{'policy':>9}" + "".join(f"{s:>9}" for s in (*STEPS, "idle"))]
    for name, by_policy in gaps.items():
        for policy, g in by_policy.items():
            lines.append(f"{name:16}{policy:>9}"
                         + "".join(f"{g[s]:>9.2f}" for s in (*STEPS, "idle")))
    return "\n".join(lines)
