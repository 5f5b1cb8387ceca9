"""Pages about discovery and scan runs: the list of runs, one run's progress and
unmatched paths, and the admins' button that starts a run for a location."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from archive_portal.htmx import wants_fragment
from catalog.models import DiscoveryRun, UnmatchedCategory
from transfers import discovery
from transfers.forms import StartRunForm

RUNS_SHOWN = 100
UNMATCHED_PER_PAGE = 100


@login_required
@require_GET
def run_list(request):
    runs = DiscoveryRun.objects.select_related("location", "requested_by")[:RUNS_SHOWN]
    form = StartRunForm() if request.user.can_administer else None
    return render(request, "transfers/discovery_list.html", {"runs": runs, "form": form, "nav": "discovery"})


@login_required
@require_POST
def start_run(request):
    if not request.user.can_administer:
        messages.error(request, "Only admins start discovery runs.")
        return redirect("transfers:discovery_runs")
    form = StartRunForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a storage location to walk.")
        return redirect("transfers:discovery_runs")
    location = form.cleaned_data["location"]
    run, created = discovery.queue_run(location=location, requested_by=request.user)
    if created:
        messages.success(request, f"Run #{run.pk} of {location.alias} is queued.")
    else:
        messages.warning(request, f"Run #{run.pk} of {location.alias} is already {run.state}; follow it here instead.")
    return redirect("transfers:discovery_run", pk=run.pk)


@login_required
@require_GET
def run_detail(request, pk):
    run = get_object_or_404(DiscoveryRun.objects.select_related("location", "requested_by"), pk=pk)
    if wants_fragment(request):
        response = render(request, "transfers/discovery_progress.html", {"run": run})
        if run.is_final:
            # The run ended while the page watched: reload it once for the full list of unmatched paths.
            response["HX-Refresh"] = "true"
        patch_vary_headers(response, ["HX-Request"])
        return response
    category = request.GET.get("category", "")
    unmatched = run.unmatched_paths.order_by("subpath")
    if category in UnmatchedCategory.values:
        unmatched = unmatched.filter(category=category)
    else:
        category = ""
    page = Paginator(unmatched, UNMATCHED_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "run": run,
        "summary": discovery.unmatched_summary(run, examples=0),
        "page": page,
        "category": category,
        "nav": "discovery",
    }
    response = render(request, "transfers/discovery_run.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response
