"""Catalog pages: subjects, their sessions, and the search that starts a retrieval."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from archive_portal.htmx import render_page
from catalog import queries
from catalog.forms import SearchForm
from catalog.models import Session

SUBJECTS_PER_PAGE = 50
SESSIONS_PER_PAGE = 50
SEARCH_SESSIONS_PER_PAGE = 25


@login_required
@require_GET
def subject_list(request):
    query = request.GET.get("q", "").strip()
    page = Paginator(queries.matching_subjects(query), SUBJECTS_PER_PAGE).get_page(request.GET.get("page"))
    subjects = queries.attach_subject_totals(page.object_list)
    return render_page(
        request,
        "catalog/subject_list.html",
        "catalog/_subject_rows.html",
        {"page": page, "subjects": subjects, "query": query, "nav": "subjects"},
    )


@login_required
@require_GET
def subject_detail(request, key):
    """A subject's sessions with their status; a session's files are shown on
    demand (htmx when its list is opened, or ``?open=<session>`` without JS)."""
    subject = queries.find_subject(key)
    if subject is None:
        # A page of its own, in the portal's frame, with a search to find the subject meant.
        return render(request, "catalog/subject_not_found.html", {"key": key, "nav": "subjects"}, status=404)
    queries.attach_subject_totals([subject])
    sessions = subject.sessions.order_by("session_date", "ident", "pk")
    page = Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    sessions = queries.session_overviews(page.object_list)
    for session in sessions:
        session.subject = subject
    opened = request.GET.get("open", "")
    queries.attach_files([session for session in sessions if str(session.pk) == opened])
    return render(
        request,
        "catalog/subject_detail.html",
        {"subject": subject, "page": page, "sessions": sessions, "nav": "subjects"},
    )


@login_required
@require_GET
def session_card(request, pk):
    """One session of the subject page, as it stands now (after its archive job finished)."""
    session = get_object_or_404(Session.objects.select_related("subject"), pk=pk)
    queries.session_overviews([session])
    return render(request, "catalog/_session_card.html", {"session": session})


@login_required
@require_GET
def session_files(request, pk):
    """The table of one session's files and their copies."""
    session = get_object_or_404(Session.objects.select_related("subject"), pk=pk)
    queries.attach_files([session])
    return render(request, "catalog/_session_files.html", {"session": session})


@login_required
@require_GET
def search(request):
    """Find sessions and files by subject, date and type, and select some to retrieve.

    A session's matching files are listed on demand (htmx when its list is
    opened, or ``?open=<session>`` without JS), so a page of sessions costs
    the same whatever their number of files.
    """
    file_types = queries.file_types()
    form = SearchForm(request.GET or None, file_types=file_types)
    context = {"form": form, "nav": "search", "file_types": file_types}
    if form.has_criteria and form.is_valid():
        file_filter, unknown = form.file_filter()
        page = Paginator(queries.search_sessions(file_filter), SEARCH_SESSIONS_PER_PAGE).get_page(
            request.GET.get("page")
        )
        sessions = queries.attach_matching_counts(page.object_list, file_filter)
        opened = [session for session in sessions if str(session.pk) == request.GET.get("open")]
        queries.attach_matching_files(opened, file_filter)
        query = request.GET.copy()
        query.pop("page", None)
        query.pop("open", None)
        context.update(
            {
                "searched": True,
                "unknown_keys": unknown,
                "page": page,
                "sessions": sessions,
                "file_filter": file_filter,
                "query_string": query.urlencode(),
                "destinations": queries.writable_locations(),
            }
        )
    return render_page(request, "catalog/search.html", "catalog/_search_results.html", context)


@login_required
@require_GET
def search_files(request, pk):
    """The checkboxes of one session's files that match the search."""
    session = get_object_or_404(Session, pk=pk)
    form = SearchForm(request.GET, file_types=queries.file_types())
    file_filter = form.file_filter()[0] if form.is_valid() else queries.FileFilter()
    queries.attach_matching_files([session], file_filter)
    return render(request, "catalog/_search_files.html", {"session": session})
