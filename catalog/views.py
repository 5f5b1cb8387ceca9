"""Catalog pages: subjects, their sessions, and the search that starts a retrieval."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from catalog import queries
from catalog.models import DatasetType, Session

SUBJECTS_PER_PAGE = 50
SESSIONS_PER_PAGE = 50
SEARCH_SESSIONS_PER_PAGE = 25


def _render(request, template, fragment, context):
    """The whole page, or only ``fragment`` when htmx swaps part of it in."""
    htmx = request.htmx and not request.htmx.history_restore_request
    response = render(request, fragment if htmx else template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_GET
def subject_list(request):
    query = request.GET.get("q", "").strip()
    page = Paginator(queries.matching_subjects(query), SUBJECTS_PER_PAGE).get_page(request.GET.get("page"))
    subjects = queries.attach_subject_totals(page.object_list)
    return _render(
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


class SearchForm(forms.Form):
    subjects = forms.CharField(
        required=False,
        label="Subjects",
        help_text="Water restriction numbers or subject ids, separated by spaces or commas.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. dl59, SC026 407513", "size": 28}),
    )
    date_from = forms.DateField(
        required=False,
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )
    date_to = forms.DateField(
        required=False,
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )
    dataset_type = forms.ChoiceField(
        required=False,
        label="Dataset type",
        choices=[("", "Any")] + list(DatasetType.choices),
        error_messages={"invalid_choice": "“%(value)s” is not a dataset type; choose one from the list."},
    )
    file_type = forms.ChoiceField(
        required=False,
        label="File type",
        error_messages={"invalid_choice": "“%(value)s” is not a known file type; choose one from the list."},
    )

    def __init__(self, *args, file_types=(), **kwargs):
        super().__init__(*args, **kwargs)
        self._file_types = {file_type.name: file_type for file_type in file_types}
        labels = dict(DatasetType.choices)
        groups = {}
        for file_type in file_types:
            groups.setdefault(labels.get(file_type.dataset_type, file_type.dataset_type), []).append(
                (file_type.name, file_type.name)
            )
        self.fields["file_type"].choices = [("", "Any"), *groups.items()]

    def clean_file_type(self):
        name = self.cleaned_data["file_type"]
        return self._file_types[name] if name else None

    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", "The end date is before the start date.")
        file_type, dataset_type = cleaned.get("file_type"), cleaned.get("dataset_type")
        if file_type and dataset_type and file_type.dataset_type != dataset_type:
            self.add_error("file_type", f"{file_type.name} files are not {dataset_type} files.")
        return cleaned

    def file_filter(self):
        """The FileFilter of this valid form, and the subject keys that name no subject."""
        data = self.cleaned_data
        keys = queries.split_subject_keys(data["subjects"])
        subjects, unknown = queries.subjects_for_keys(keys)
        file_filter = queries.FileFilter(
            subjects=subjects,
            date_from=data["date_from"],
            date_to=data["date_to"],
            dataset_type=data["dataset_type"],
            file_type=data["file_type"],
            matches_nothing=bool(keys and not subjects),
        )
        return file_filter, unknown

    @property
    def has_criteria(self):
        return self.is_bound and any(self.data.get(name) for name in self.fields)


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
    return _render(request, "catalog/search.html", "catalog/_search_results.html", context)


@login_required
@require_GET
def search_files(request, pk):
    """The checkboxes of one session's files that match the search."""
    session = get_object_or_404(Session, pk=pk)
    form = SearchForm(request.GET, file_types=queries.file_types())
    file_filter = form.file_filter()[0] if form.is_valid() else queries.FileFilter()
    queries.attach_matching_files([session], file_filter)
    return render(request, "catalog/_search_files.html", {"session": session})
