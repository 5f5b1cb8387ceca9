"""Catalog pages: subjects and their sessions."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from catalog import queries

SUBJECTS_PER_PAGE = 50


@login_required
def subject_list(request):
    query = request.GET.get("q", "")
    subjects = queries.search_subjects(query)
    page = Paginator(subjects, SUBJECTS_PER_PAGE).get_page(request.GET.get("page"))
    template = "catalog/_subject_rows.html" if request.htmx else "catalog/subject_list.html"
    return render(request, template, {"page": page, "query": query, "nav": "subjects"})


@login_required
def subject_detail(request, key):
    subject = queries.find_subject(key)
    if subject is None:
        raise Http404(f"No subject with water restriction number or subject id {key!r}.")
    sessions = queries.subject_sessions(subject)
    return render(
        request,
        "catalog/subject_detail.html",
        {"subject": subject, "sessions": sessions, "nav": "subjects"},
    )
