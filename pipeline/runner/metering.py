"""What both engines tell the StageMeter about decode calls and analyses."""

from __future__ import annotations

from pipeline.observe.stage_meter import StageMeter
from pipeline.observe.work_times import WorkTimes
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import DecodeReport
from pipeline.runner.scheduling import pool_frames


def count_analyses(meter: StageMeter, names: list[str], units: list[WorkUnit], way: str) -> None:
    """Units (and the frames they read) with work for each analysis of `names`,
    going in (`way` "in") or out ("out")."""
    for name in names:
        mine = [u for u in units if u.work_for(name) is not None]
        if mine:
            meter.add("analysis", name, **{f"items_{way}": len(mine),
                                           f"frames_{way}": pool_frames(mine, [name])})


def count_decoded(meter: StageMeter, reports: list[DecodeReport], times: WorkTimes,
                  on_decoder: list[str]) -> None:
    """A decode call's measured seconds, its units and frames out, and the
    units of the model-free analyses (`on_decoder`) that ran next to it."""
    meter.add_times(times)
    meter.add("decode", items_out=len(reports), frames_out=sum(r.outcome.frames for r in reports))
    ok = [r.unit for r in reports if r.outcome.status == "ok"]
    count_analyses(meter, on_decoder, ok, "in")
    count_analyses(meter, on_decoder, ok, "out")


def count_submitted(meter: StageMeter, units: list[WorkUnit]) -> None:
    """Units handed to decode, and the frames they will read."""
    meter.add("decode", items_in=len(units), frames_in=sum(len(u.frame_indices) for u in units))
