from django.urls import path

from transfers import views

app_name = "transfers"

urlpatterns = [
    path("", views.job_list, name="jobs"),
]
