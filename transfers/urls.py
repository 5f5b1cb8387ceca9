from django.urls import path

from transfers import discovery_views, views

app_name = "transfers"

urlpatterns = [
    path("", views.job_list, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/progress/", views.job_progress, name="job_progress"),
    path("jobs/<int:pk>/cancel/", views.cancel_job, name="cancel"),
    path("archive/<int:session_pk>/", views.archive_session, name="archive_session"),
    path("retrieve/", views.retrieve, name="retrieve"),
    path("discovery/", discovery_views.run_list, name="discovery_runs"),
    path("discovery/start/", discovery_views.start_run, name="discovery_start"),
    path("discovery/<int:pk>/", discovery_views.run_detail, name="discovery_run"),
]
