"""Formatting helpers for the portal's pages."""

from django import template

register = template.Library()

_UNITS = ["B", "KB", "MB", "GB", "TB", "PB"]


@register.filter
def bytes(value):
    """A size in bytes as people read it (decimal units, as Globus shows them)."""
    if value is None:
        return "—"
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1000 or unit == _UNITS[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} {_UNITS[-1]}"
