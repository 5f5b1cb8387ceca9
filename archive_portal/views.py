"""Pages of the identity layer: "log in with Globus again" when Globus says no.

``render_login_again(request, error)`` turns a ``transfers.errors.LoginRequired``
or ``ConsentRequired`` into the page that says what happened and offers a
button starting a Globus login for exactly the missing scopes; the
``GlobusErrorMiddleware`` uses it for errors raised in views, and pages that
know a job is parked link to ``globus_login_again`` with the same parameters.

``no_email`` answers allauth's pages that would send email: the portal sends none.
"""

import re
from urllib.parse import urlencode, urlsplit

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from archive_portal import globus
from transfers import clients
from transfers.errors import ConsentRequired

_DATA_ACCESS = re.compile(r"https://auth\.globus\.org/scopes/([0-9a-fA-F-]{36})/data_access")


def _safe_next(request, candidate):
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return ""


def return_path(request):
    """Where the user should land after logging in again: this page for a
    GET, else the page the request came from (a POST cannot be replayed)."""
    if request.method == "GET" and not getattr(request, "htmx", False):
        return request.get_full_path()
    for header in ("HX-Current-URL", "Referer"):
        value = request.headers.get(header)
        if value:
            parts = urlsplit(value)
            candidate = parts.path + (f"?{parts.query}" if parts.query else "")
            if parts.netloc in ("", request.get_host()) and _safe_next(request, candidate):
                return candidate
    return reverse("catalog:subjects")


def login_again_url(error, next_url=""):
    """URL of the login-again page for a LoginRequired / ConsentRequired."""
    params = [("reason", "consent" if isinstance(error, ConsentRequired) else "login")]
    params += [("scope", scope) for scope in error.scopes]
    if next_url:
        params.append(("next", next_url))
    return f"{reverse('globus_login_again')}?{urlencode(params)}"


def render_login_again(request, *, reason, scopes, next_url, message="", status=200):
    scopes = [scope for scope in scopes if globus.is_globus_scope(scope)]
    collections = sorted({match.group(1) for scope in scopes for match in _DATA_ACCESS.finditer(scope)})
    context = {
        "reason": reason,
        "message": message,
        "collections": collections,
        "next_url": next_url,
        "globus_configured": clients.client_configured(),
        "globus_login_action": globus.login_url(scopes=scopes, next_url=next_url),
    }
    return render(request, "portal/login_again.html", context, status=status)


def render_globus_error(request, error):
    """The login-again page for a LoginRequired (or ConsentRequired) raised in a view."""
    return render_login_again(
        request,
        reason="consent" if isinstance(error, ConsentRequired) else "login",
        scopes=error.scopes,
        next_url=return_path(request),
        message=str(error),
        status=403,
    )


@require_GET
def login_again(request):
    """``?reason=login|consent&scope=...&next=...``: explain and offer the login."""
    reason = request.GET.get("reason")
    scopes = [s for value in request.GET.getlist("scope") for s in value.split(",") if s.strip()]
    return render_login_again(
        request,
        reason="consent" if reason == "consent" else "login",
        scopes=scopes,
        next_url=_safe_next(request, request.GET.get("next")),
    )


def no_email(request):
    """allauth's pages that send email (password reset, managing addresses):
    the portal sends none, so each answers with what to do instead."""
    messages.info(
        request,
        "The portal sends no email: lab staff log in with Globus, and an admin sets local passwords "
        "in the admin site.",
    )
    return redirect("catalog:subjects" if request.user.is_authenticated else "account_login")
