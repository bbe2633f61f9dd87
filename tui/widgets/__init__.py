"""Widgets grouped by the feature they serve."""
