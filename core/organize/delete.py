"""Delete models: to the trash by default, whole sets, and managed stores the way they expect.

A delete is journaled (journal.py) and goes in two phases. First every file of every set is moved
into a staging folder beside it (`.quanttui-deleting-ID/K/SET/`, K the set's number, so two sets of
one name never meet): undone on any failure, and rolled back by `recover_delete` after a kill. Each
file's staged name is chosen before the first move and written in the journal: its own name, or, when
two files of the set share a name (HF links of two revisions that lead to two `m.gguf`), a numbered
folder per file (`SET/1/m.gguf`, `SET/2/m.gguf`). A move never replaces a file: it links the new name
(which fails if the name exists) and then unlinks the old one, where os.rename would silently
overwrite and lose a file. Then, past the commit point, each set is removed whole:
permanently (the journal says so first, so recovery completes it), or to the trash as one item (the
file itself, or the set's folder), after which its links, refs, manifests and emptied folders go.
If the trash refuses a set, that set and every later one are put back where they were.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from send2trash import send2trash

from ..library.roots import Root
from ..textsafe import clean, clean_path
from .delete_plan import DeletePlan, DeleteUnit, check_plan, plan_delete
from .journal import ROOTS, Journal, failpoint, fsync_dir, move_no_replace, root_paths
from .safety import OrganizeError, log_operation

__all__ = ["DeletePlan", "DeleteUnit", "execute_delete", "plan_delete", "recover_delete"]
STAGE_PREFIX = ".quanttui-deleting-"


def _stage_dir(unit: DeleteUnit, op_id: str, number: int) -> Path:
    """Where a set waits for its removal: beside its first file (same filesystem), under a hidden
    folder and a folder of its own number (labels repeat: `Q4/model.gguf`, `Q8/model.gguf`); the set's
    own folder is what the trash shows."""
    n = len(unit.files)
    return (
        unit.files[0].parent
        / f"{STAGE_PREFIX}{op_id}"
        / str(number)
        / (unit.label if n == 1 else f"{unit.label} ({n} files)")
    )


def _staged_names(files: list[Path]) -> list[str]:
    """Each file's name inside its stage, all different: its own name, or, when two files share one, a
    numbered folder per file, so no staged file can take another's place."""
    if len(Counter(f.name for f in files)) == len(files):
        return [f.name for f in files]
    return [f"{k}/{f.name}" for k, f in enumerate(files, 1)]


def _unit_record(unit: DeleteUnit, stage: Path | None) -> dict[str, Any]:
    names = _staged_names(unit.files)
    moves = [
        [str(f), str(stage / name) if stage else None] for f, name in zip(unit.files, names, strict=True)
    ]
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
    journal = Journal(
        "delete", {"permanent": plan.permanent, "state": "staging", "done": [], ROOTS: root_paths(roots)}
    )
    records = []
    for k, unit in enumerate(plan.units, 1):
        staged = unit.files and (plan.permanent or len(unit.files) > 1)
        records.append(_unit_record(unit, _stage_dir(unit, journal.id, k) if staged else None))
    try:
        journal.save(units=records)
    except OSError as e:
        raise OrganizeError(f"cannot write the organize journal ({clean(e)}); nothing was deleted") from None
    try:
        _stage_all(records, journal.data[ROOTS])
    except OSError as e:
        _roll_back(records, journal.data[ROOTS])
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


def _stage_all(records: list[dict[str, Any]], tops: list[str] | None = None) -> None:
    n = 0
    for rec in records:
        if not rec["stage"]:
            continue
        stage = Path(rec["stage"])
        stage.mkdir(parents=True)
        for orig, staged in rec["moves"]:
            Path(staged).parent.mkdir(exist_ok=True)
            n += 1
            move_no_replace(orig, staged, f"delete:stage-linked:{n}", tops)
            failpoint(f"delete:staged:{n}")
        for folder in sorted({str(Path(p).parent) for pair in rec["moves"] for p in pair}):
            fsync_dir(folder)  # both ends of every move durable before the next commit point


def _trash_units(records: list[dict[str, Any]], journal: Journal, plan: DeletePlan) -> None:
    for k, rec in enumerate(records):
        item = rec["stage"] or (rec["moves"][0][0] if rec["moves"] else None)
        try:
            failpoint(f"delete:trash:{k + 1}")
            if item:
                send2trash(item)
        except Exception as e:  # send2trash raises its own TrashPermissionError and OSErrors
            _roll_back(records[k:], journal.data[ROOTS])
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


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samestat(os.lstat(a), os.lstat(b))
    except OSError:
        return False


def _roll_back(records: list[dict[str, Any]], tops: list[str] | None = None) -> list[str]:
    """Move every staged file of these sets back to where it was, never over another file; the paths
    put back. A staged name that is a second link to the file still in place (a kill between link and
    unlink) is only dropped."""
    back = []
    for rec in records:
        for orig, staged in rec["moves"]:
            if not staged or not os.path.lexists(staged):
                continue
            if not os.path.lexists(orig):
                move_no_replace(staged, orig, tops=tops)
                back.append(orig)
            elif _same_file(orig, staged):
                os.unlink(staged)
        _prune(rec)
    return back


def _rmdir_quiet(folder: Path) -> bool:
    """Remove an empty folder; whether it is gone now (False: not empty, or not removable)."""
    try:
        folder.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _prune(rec: dict[str, Any]) -> None:
    """Remove the set's staging folders that are empty: the numbered folders of its files, its stage
    and the folders above it up to the `.quanttui-deleting-ID` one, never a folder outside that."""
    if not rec["stage"]:
        return
    stage = Path(rec["stage"])
    tops = [p for p in (stage, *stage.parents) if p.name.startswith(STAGE_PREFIX)]
    if not tops:
        return
    for _, staged in rec["moves"]:
        if staged and Path(staged).parent != stage:
            _rmdir_quiet(Path(staged).parent)
    folder = stage
    while _rmdir_quiet(folder) and folder != tops[0]:
        folder = folder.parent


def _remove_stage_roots(records: list[dict[str, Any]]) -> None:
    for rec in records:
        _prune(rec)


def _gone(rec: dict[str, Any]) -> bool:
    """Whether none of the set's files is left at its place or in its stage (it reached the trash)."""
    return bool(rec["moves"]) and not any(
        os.path.lexists(orig) or (staged and os.path.lexists(staged)) for orig, staged in rec["moves"]
    )


def _tops(data: dict[str, Any]) -> list[str] | None:
    roots = data.get(ROOTS)
    return roots if isinstance(roots, list) and roots and all(isinstance(r, str) for r in roots) else None


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
            back = _roll_back([rec], _tops(data))
            if back:
                lines.append(f"rolled back the interrupted delete of {label}: {len(back)} file(s) put back")
    _remove_stage_roots(records)
    return lines
