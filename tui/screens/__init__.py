"""Screens of the quanttui app, one per capability."""
