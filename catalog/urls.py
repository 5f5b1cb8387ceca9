from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("", views.subject_list, name="subjects"),
    path("subjects/<str:key>/", views.subject_detail, name="subject"),
    path("sessions/<int:pk>/", views.session_card, name="session_card"),
    path("sessions/<int:pk>/files/", views.session_files, name="session_files"),
    path("search/", views.search, name="search"),
    path("search/sessions/<int:pk>/files/", views.search_files, name="search_files"),
]
