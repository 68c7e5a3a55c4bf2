"""`profiles`: the built-in register maps, one line each."""

from __future__ import annotations

from energy_pipeline.console.output import emit_json
from energy_pipeline.profiles import builtin_summaries


def list_profiles(as_json: bool) -> int:
    rows = builtin_summaries()
    if as_json:
        emit_json(rows)
        return 0
    widths = [max(len(str(r[k])) for r in rows) for k in ("name", "manufacturer", "model")]
    for r in rows:
        print(
            f"{r['name']:<{widths[0]}}  {r['manufacturer']:<{widths[1]}}  "
            f"{r['model']:<{widths[2]}}  {r['points']:>3} points"
        )
    return 0
