"""Turn "log in again" failures raised in views into a page a person can act on,
and keep credentials out of error reports."""

import re

from django.http import HttpResponse
from django.views.debug import SafeExceptionReporterFilter

from archive_portal import views
from transfers.errors import LoginRequired


class GlobusErrorMiddleware:
    """``LoginRequired`` / ``ConsentRequired`` from a view become the
    login-again page; an htmx request is redirected to it instead."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, LoginRequired):
            return None
        if getattr(request, "htmx", False):
            response = HttpResponse()
            response["HX-Redirect"] = views.login_again_url(exception, views.return_path(request))
            return response
        return views.render_globus_error(request, exception)


class TokenSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Error reports (DEBUG off) also hide frame variables named like
    credentials (``refresh_token``, ``auth_header``, ...) and such keys in
    dicts (``headers["Authorization"]``), in every frame, including
    globus-sdk's and requests' own. ``sensitive_variables`` stays the first
    line; this catches frames no decorator reaches. Settings and request
    variables naming a database or Redis URL are hidden too: such URLs may
    carry a password."""

    hidden_settings = re.compile(
        SafeExceptionReporterFilter.hidden_settings.pattern + "|DATABASE_URL|REDIS", flags=re.IGNORECASE
    )

    def get_traceback_frame_variables(self, request, tb_frame):
        items = super().get_traceback_frame_variables(request, tb_frame)
        if not self.is_active(request):
            return items
        return [(name, self.cleanse_setting(name, value)) for name, value in items]
