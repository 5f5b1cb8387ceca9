"""Pages about transfer jobs."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from transfers.models import TransferJob


@login_required
def job_list(request):
    jobs = TransferJob.objects.select_related("source", "destination", "requested_by", "session__subject")[:100]
    return render(request, "transfers/job_list.html", {"jobs": jobs})
