"""Rendering a page or, for htmx, only the fragment it swaps in."""

from django.shortcuts import render
from django.utils.cache import patch_vary_headers


def wants_fragment(request):
    """True when htmx asks for part of a page (not when it restores history)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def render_page(request, template, fragment, context):
    """The whole page, or only ``fragment`` when htmx swaps part of it in."""
    response = render(request, fragment if wants_fragment(request) else template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response
