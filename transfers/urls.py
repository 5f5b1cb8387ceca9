from django.urls import path

from transfers import views

app_name = "transfers"

urlpatterns = [
    path("", views.job_list, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/progress/", views.job_progress, name="job_progress"),
    path("jobs/<int:pk>/cancel/", views.cancel_job, name="cancel"),
    path("archive/<int:session_pk>/", views.archive_session, name="archive_session"),
    path("retrieve/", views.retrieve, name="retrieve"),
]
