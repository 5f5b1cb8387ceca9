"""Pages about transfer jobs: archiving a session, retrieving a selection,
watching and canceling jobs.

Views are thin: they check who asks, call one service and render. A refusal by
a service is shown to the person as a message, never as a server error.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from archive_portal.htmx import render_page, wants_fragment
from catalog import queries as catalog_queries
from catalog.forms import SearchForm
from catalog.models import RawFile, Session
from transfers import queries, services
from transfers.forms import JobFilterForm, RetrievalForm
from transfers.models import JobState, TransferJob

JOBS_PER_PAGE = 50
ITEMS_PER_PAGE = 100
PREVIEW_SAMPLE = 20


def _can_cancel(user, job):
    return not job.is_final and services.can_cancel(job, user)


# Transfers page ------------------------------------------------------------


@login_required
@require_GET
def job_list(request):
    form = JobFilterForm(request.GET, requesters=queries.requesters())
    form.is_valid()
    filters = form.cleaned_data
    jobs = queries.jobs(state=filters.get("state", ""), user=filters.get("user"), subject=filters.get("subject"))
    if "subject" in form.errors:
        # A mistyped subject lists no job rather than every job of every subject.
        jobs = jobs.none()
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "jobs": list(page.object_list),
        "query_string": query.urlencode(),
        "nav": "transfers",
    }
    context["live"] = any(not job.is_final for job in context["jobs"])
    return render_page(request, "transfers/job_list.html", "transfers/_job_rows.html", context)


# One job -------------------------------------------------------------------


def _job_or_404(pk):
    job = queries.job(pk)
    if job is None:
        raise Http404(f"No transfer job #{pk}.")
    return job


@login_required
@require_GET
def job_detail(request, pk):
    job = _job_or_404(pk)
    page = Paginator(queries.job_items(job), ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "job": job,
        "page": page,
        "task_links": queries.globus_task_links(job),
        "can_cancel": _can_cancel(request.user, job),
        "advice": queries.ERROR_ADVICE.get(job.error_code, ""),
        "login_again_url": queries.login_again_url(job) if job.state == JobState.NEEDS_LOGIN else "",
        "nav": "transfers",
    }
    return render_page(request, "transfers/job_detail.html", "transfers/_job_live.html", context)


@login_required
@require_GET
def job_progress(request, pk):
    """The small live progress of one job, as the subject page shows it."""
    job = get_object_or_404(TransferJob.objects.select_related("destination"), pk=pk)
    response = render(request, "transfers/_job_progress.html", {"job": job})
    if job.state == JobState.SUCCEEDED and job.session_id is not None:
        # The session's card on the subject page reloads to show its new copies,
        # and the subject's archived share above them; a failed or canceled job
        # stays in view with its link.
        response["HX-Trigger"] = f"session-changed-{job.session_id}, subject-changed"
    return response


@login_required
@require_POST
def cancel_job(request, pk):
    job = _job_or_404(pk)
    try:
        job = services.cancel_job(job=job, user=request.user)
    except services.Refusal as refusal:
        messages.error(request, str(refusal))
    else:
        if job.state == JobState.CANCELED:
            messages.success(request, f"Job #{job.pk} is canceled.")
        else:
            messages.success(request, f"Job #{job.pk} is being canceled; it stops in a moment.")
    return redirect("transfers:job", pk=job.pk)


# Archiving -----------------------------------------------------------------


@login_required
@require_POST
def archive_session(request, session_pk):
    """Queue the archive of a session's raw files; htmx gets the live progress back."""
    session = get_object_or_404(Session.objects.select_related("subject"), pk=session_pk)
    back = reverse("catalog:subject", args=[session.subject.water_restriction_number])
    back += f"#session-{session.pk}"
    if not request.user.can_archive:
        return _archive_refused(
            request, session, back, "Only archivists can archive sessions; ask one of them or an admin."
        )
    try:
        jobs = services.request_archive(session=session, user=request.user)
    except services.Refusal as refusal:
        return _archive_refused(request, session, back, str(refusal))
    if wants_fragment(request):
        return render(request, "transfers/_job_archive_started.html", {"session": session, "jobs": jobs})
    messages.success(request, f"Archiving {session}: {_job_numbers(jobs)} queued.")
    return redirect(back)


def _archive_refused(request, session, back, message):
    if wants_fragment(request):
        return render(request, "transfers/_job_refused.html", {"session": session, "message": message})
    messages.error(request, message)
    return redirect(back)


def _job_numbers(jobs):
    numbers = ", ".join(f"#{job.pk}" for job in jobs)
    return f"job{'s' if len(jobs) != 1 else ''} {numbers}"


# Retrieval -----------------------------------------------------------------


def _selection(form, search):
    """The ids of the sessions and files a retrieval form names, as the services take them.

    Whole sessions are passed as sessions (ids that name nothing select
    nothing); when the search narrowed the files (a dataset or file type), or
    asked for every matching session, the selection becomes the matching files
    of those sessions.
    """
    data = form.cleaned_data
    file_filter = search.file_filter()[0] if search.is_valid() else catalog_queries.FileFilter()
    if not (file_filter.narrows_files or data["all_matching"]):
        return {"files": data["file"] or None, "sessions": data["session"] or None}
    if data["all_matching"]:
        sessions = file_filter.sessions()
    else:
        sessions = Session.objects.filter(pk__in=data["session"])
    matching = file_filter.files(RawFile.objects.filter(session__in=sessions.values("pk")))
    files = RawFile.objects.filter(Q(pk__in=matching.values("pk")) | Q(pk__in=data["file"]))
    return {"files": files.values_list("pk", flat=True), "sessions": None}


@login_required
@require_POST
def retrieve(request):
    """Preview a retrieval (what will be copied, what is already there, what is
    not archived), then queue it when the person confirms."""
    if not request.user.can_retrieve:
        messages.error(request, "Your account cannot retrieve files.")
        return redirect("catalog:search")
    search = SearchForm(request.POST, file_types=catalog_queries.file_types())
    form = RetrievalForm(request.POST)
    carried = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in {"csrfmiddlewaretoken", "step"}
        for value in values
    ]
    context = {"form": form, "search": search, "carried": carried, "nav": "search"}
    if not form.is_valid():
        return _render_preview(request, context)
    selection = _selection(form, search)
    destination = form.cleaned_data["destination"]
    try:
        if request.POST.get("step") == "confirm":
            jobs = services.request_retrieval(**selection, destination=destination, user=request.user)
            return _retrieval_queued(request, jobs)
        preview = services.preview_retrieval(**selection, destination=destination)
    except services.Refusal as refusal:
        context["refusal"] = str(refusal)
        return _render_preview(request, context)
    context.update({"preview": preview, "destination": destination, "sample": preview.files[:PREVIEW_SAMPLE]})
    return _render_preview(request, context)


def _render_preview(request, context):
    return render_page(request, "transfers/job_retrieve.html", "transfers/_job_retrieve_preview.html", context)


def _retrieval_queued(request, jobs):
    messages.success(request, f"Retrieval queued: {_job_numbers(jobs)}.")
    if len(jobs) == 1:
        url = reverse("transfers:job", args=[jobs[0].pk])
    else:
        url = reverse("transfers:jobs") + f"?user={request.user.pk}"
    return redirect(url)
