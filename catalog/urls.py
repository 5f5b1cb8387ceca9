from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("", views.subject_list, name="subjects"),
    path("subjects/<str:key>/", views.subject_detail, name="subject"),
    path("search/", views.search, name="search"),
]
