"""Delete models: to the trash by default, whole sets, and managed stores the way they expect.

A delete is journaled (journal.py) and goes in two phases. First every file of every set is renamed
into a staging folder beside it (`.quanttui-deleting-ID/SET/`): atomic, undone on any failure, and
rolled back by `recover_delete` after a kill. Then, past the commit point, each set is removed whole:
permanently (the journal says so first, so recovery completes it), or to the trash as one item (the
file itself, or the set's folder), after which its links, refs, manifests and emptied folders go.
If the trash refuses a set, that set and every later one are put back where they were.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from send2trash import send2trash

from ..library.roots import Root
from ..textsafe import clean, clean_path
from .delete_plan import DeletePlan, DeleteUnit, check_plan, plan_delete
from .journal import Journal, failpoint, fsync_dir
from .safety import OrganizeError, log_operation

__all__ = ["DeletePlan", "DeleteUnit", "execute_delete", "plan_delete", "recover_delete"]
STAGE_PREFIX = ".quanttui-deleting-"


def _stage_dir(unit: DeleteUnit, op_id: str) -> Path:
    """Where a set waits for its removal: beside its first file (same filesystem), under a hidden
    folder; the set's own folder is what the trash shows."""
    n = len(unit.files)
    return (
        unit.files[0].parent
        / f"{STAGE_PREFIX}{op_id}"
        / (unit.label if n == 1 else f"{unit.label} ({n} files)")
    )


def _unit_record(unit: DeleteUnit, stage: Path | None) -> dict[str, Any]:
    moves = [[str(f), str(stage / f.name) if stage else None] for f in unit.files]
    return {
        "label": unit.label,
        "stage": str(stage) if stage else None,
        "moves": moves,
        **{kind: [str(p) for p in getattr(unit, kind)] for kind in ("links", "refs", "manifests", "dirs")},
    }


def execute_delete(plan: DeletePlan, roots: list[Root]) -> None:
    """Carry out a plan (checked whole again first); OrganizeError leaves every set not reported as
    removed exactly where it was."""
    check_plan(plan, roots)
    journal = Journal("delete", {"permanent": plan.permanent, "state": "staging", "done": []})
    records = []
    for unit in plan.units:
        staged = unit.files and (plan.permanent or len(unit.files) > 1)
        records.append(_unit_record(unit, _stage_dir(unit, journal.id) if staged else None))
    try:
        journal.save(units=records)
    except OSError as e:
        raise OrganizeError(f"cannot write the organize journal ({clean(e)}); nothing was deleted") from None
    try:
        _stage_all(records)
    except OSError as e:
        _roll_back(records)
        _remove_stage_roots(records)
        journal.close()
        raise OrganizeError(
            f"could not remove {len(plan.files)} files ({clean(e)}); nothing was deleted"
        ) from None
    try:
        if plan.permanent:
            journal.save(state="committed")
            failpoint("delete:committed")
            for k, rec in enumerate(records):
                _finish(rec)
                failpoint(f"delete:finished:{k + 1}")
        else:
            _trash_units(records, journal, plan)
    except OSError as e:  # past the commit point: the journal stays, the next start finishes it
        raise OrganizeError(
            f"the delete stopped part-way ({clean(e)}); quanttui completes or undoes it at its next start"
        ) from None
    _remove_stage_roots(records)
    journal.close()
    log_operation(
        "delete",
        permanent=plan.permanent,
        targets=plan.targets,
        files=[str(f) for f in plan.files],
        bytes_freed=plan.bytes_freed,
    )


def _stage_all(records: list[dict[str, Any]]) -> None:
    n = 0
    for rec in records:
        if not rec["stage"]:
            continue
        Path(rec["stage"]).mkdir(parents=True)
        for orig, staged in rec["moves"]:
            os.rename(orig, staged)
            n += 1
            failpoint(f"delete:staged:{n}")
        fsync_dir(rec["stage"])


def _trash_units(records: list[dict[str, Any]], journal: Journal, plan: DeletePlan) -> None:
    for k, rec in enumerate(records):
        item = rec["stage"] or (rec["moves"][0][0] if rec["moves"] else None)
        try:
            failpoint(f"delete:trash:{k + 1}")
            if item:
                send2trash(item)
        except Exception as e:  # send2trash raises its own TrashPermissionError and OSErrors
            _roll_back(records[k:])
            _remove_stage_roots(records)
            journal.close()
            log_operation("delete", files=[str(x) for x in plan.files], failed_at=item, error=str(e))
            kept = (
                "nothing was deleted" if k == 0 else f"{k} set(s) went to the trash, the rest are unchanged"
            )
            raise OrganizeError(
                f"{clean_path(item or rec['label'])}: could not move to the trash ({clean(e)}); {kept};"
                " use --permanent"
            ) from None
        journal.save(done=[*journal.data["done"], k])
        failpoint(f"delete:trashed:{k + 1}")
        _finish(rec, trashed=True)


def _finish(rec: dict[str, Any], *, trashed: bool = False) -> None:
    """The set's data is gone (trashed or to be removed): remove its stage and companions; idempotent."""
    for kind in ("links", "refs", "manifests"):
        for p in rec[kind]:
            Path(p).unlink(missing_ok=True)
    if rec["stage"] and not trashed:
        shutil.rmtree(rec["stage"], ignore_errors=True)
    for d in rec["dirs"]:
        if os.path.islink(d):
            Path(d).unlink(missing_ok=True)
        else:
            shutil.rmtree(d, ignore_errors=True)


def _roll_back(records: list[dict[str, Any]]) -> list[str]:
    """Rename every staged file of these sets back to where it was; the paths put back."""
    back = []
    for rec in records:
        for orig, staged in rec["moves"]:
            if staged and os.path.lexists(staged) and not os.path.lexists(orig):
                os.rename(staged, orig)
                back.append(orig)
        if rec["stage"]:
            _rmdir_quiet(Path(rec["stage"]))
    return back


def _rmdir_quiet(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _remove_stage_roots(records: list[dict[str, Any]]) -> None:
    for rec in records:
        if rec["stage"]:
            stage = Path(rec["stage"])
            _rmdir_quiet(stage)
            _rmdir_quiet(stage.parent)


def _gone(rec: dict[str, Any]) -> bool:
    """Whether none of the set's files is left at its place or in its stage (it reached the trash)."""
    return bool(rec["moves"]) and not any(
        os.path.lexists(orig) or (staged and os.path.lexists(staged)) for orig, staged in rec["moves"]
    )


def recover_delete(data: dict[str, Any]) -> list[str]:
    """Complete an interrupted delete past its commit point, else roll it back; one line per set."""
    records = data.get("units", [])
    lines: list[str] = []
    committed = data.get("permanent") and data.get("state") == "committed"
    done = set(data.get("done", []))
    for k, rec in enumerate(records):
        label = clean(rec["label"])
        if committed or k in done or _gone(rec):
            _finish(rec, trashed=not data.get("permanent"))
            lines.append(f"completed the interrupted delete of {label}")
        else:
            back = _roll_back([rec])
            if back:
                lines.append(f"rolled back the interrupted delete of {label}: {len(back)} file(s) put back")
    _remove_stage_roots(records)
    return lines
