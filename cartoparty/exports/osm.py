"""The event's plan of OpenStreetMap changes as files (osm/changes.py writes them): osmChange,
JOSM and a GeoJSON preview, one file per changeset — FILE-1.osc, FILE-2.osc… when the plan
needs several — each replaced whole or not at all."""

from pathlib import Path

from ..osm import changes
from .common import replace_whole


def numbered(target, number, count):
    """FILE itself for a single file, else FILE with -N before its extension."""
    target = Path(target)
    return target if count == 1 else target.with_name(f"{target.stem}-{number}{target.suffix}")


def write_plan(event, fmt, target, lang, max_changes=None):
    """Write the plan's ready changes as `fmt` to `target` (numbered when there are several
    changesets; the preview is one file). Returns [(path, number of changes)]."""
    plan = changes.plan_of(event)
    if fmt == "osm-preview":
        sets = [changes.ready_changes(event)]
    else:
        sets = changes.changesets(event, plan, max_changes, diff=False)
    written = []
    for number, changeset in enumerate(sets, start=1):
        path = numbered(target, number, len(sets))
        replace_whole(path, lambda partial, changeset=changeset: _write(
            event, plan, fmt, changeset, partial, lang), fmt)
        written.append((path, len(changeset)))
    return written


def _write(event, plan, fmt, changeset, path, lang):
    with open(path, "wb") as out:
        changes.write_file(event, plan, fmt, changeset, out, lang)
