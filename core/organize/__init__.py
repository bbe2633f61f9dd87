"""Organize: delete, move, rename and deduplicate model files without losing one by accident."""

from __future__ import annotations

from .dedupe import DuplicateGroup, find_duplicates, link_extras
from .delete import DeletePlan, DeleteUnit, execute_delete, plan_delete
from .move import canonical_folder, move, rename
from .recover import recover_interrupted
from .safety import OrganizeError, in_use, log_path, mark_in_use, root_of, unmark_in_use
from .usage import Usage, disk_usage

__all__ = [
    "DeletePlan",
    "DeleteUnit",
    "DuplicateGroup",
    "OrganizeError",
    "Usage",
    "canonical_folder",
    "disk_usage",
    "execute_delete",
    "find_duplicates",
    "in_use",
    "link_extras",
    "log_path",
    "mark_in_use",
    "move",
    "plan_delete",
    "recover_interrupted",
    "rename",
    "root_of",
    "unmark_in_use",
]
