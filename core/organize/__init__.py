"""Organize: delete, move, rename and deduplicate model files without losing one by accident."""

from __future__ import annotations

from .dedupe import DuplicateGroup, find_duplicates, link_extras
from .delete import DeletePlan, execute_delete, plan_delete
from .move import canonical_folder, move, rename
from .safety import OrganizeError, in_use, log_path, mark_in_use, root_of, unmark_in_use
from .usage import Usage, disk_usage

__all__ = [
    "DeletePlan",
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
    "rename",
    "root_of",
    "unmark_in_use",
]
