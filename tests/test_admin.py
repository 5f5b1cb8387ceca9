"""The admin site: what staff edit, what they see, and what it records."""

import datetime
import uuid

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from archive_portal.models import Role
from catalog.models import LocationRole, Session, StorageLocation, Subject
from tests.factories import (
    GlobusLocationFactory,
    RawFileFactory,
    ReplicaFactory,
    SessionFactory,
    StorageLocationFactory,
    SubjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

PETREL = "5b875fda-4185-11e8-bb52-0ac6873fc732"
CSV_HEADER = "subject_id,water_restriction_number,session_date,ident,session_number,session_time,rig"


@pytest.fixture
def role_admin_client(client):
    """An admin by role only: no superuser flag, no Django permissions."""
    client.force_login(UserFactory(username="role-admin@lab.example.org", role=Role.ADMIN))
    return client


def results(response):
    return list(response.context["cl"].result_list)


def location_form(**values):
    data = {
        "alias": "rig-3-ephys",
        "role": "local",
        "dataset_type": "raw-ephys",
        "backend": "filesystem",
        "collection_id": "",
        "root_path": "/",
        "local_path": "/data/rig3/ephys",
        "description": "",
        "_save": "Save",
    }
    data.update(values)
    return data


def form_errors(response):
    form = response.context["adminform"].form
    return {name: [str(message) for message in messages] for name, messages in form.errors.items()}


# Who gets in


def test_the_admin_index_lists_what_staff_edit(admin_client):
    response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200
    for name in (
        "Storage locations",
        "File types",
        "Subjects",
        "Sessions",
        "Raw files",
        "Replicas",
        "Users",
        "Log entries",
    ):
        assert name in response.content.decode()


def test_an_admin_by_role_is_staff_and_can_edit_without_django_permissions(role_admin_client):
    location = StorageLocationFactory(alias="rig-1", local_path="/data/rig1")

    index = role_admin_client.get(reverse("admin:index"))
    response = role_admin_client.post(
        reverse("admin:catalog_storagelocation_change", args=[location.pk]),
        location_form(alias="rig-1", local_path="/data/rig1", writable="on"),
    )

    assert index.status_code == 200 and "Storage locations" in index.content.decode()
    assert response.status_code == 302
    location.refresh_from_db()
    assert location.writable is True


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ARCHIVIST])
def test_viewers_and_archivists_are_sent_to_the_admin_login(client, role):
    user = UserFactory(role=role)
    client.force_login(user)

    response = client.get(reverse("admin:catalog_storagelocation_changelist"))

    assert user.is_staff is False
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


# Storage locations


def test_locations_are_filtered_by_dataset_type_role_backend_and_writable(admin_client):
    archive = GlobusLocationFactory(alias="raw-ephys-archive", role=LocationRole.ARCHIVE)
    rig = StorageLocationFactory(alias="rig-1", writable=True)
    video = StorageLocationFactory(alias="video-share", dataset_type="raw-video")
    url = reverse("admin:catalog_storagelocation_changelist")

    assert results(admin_client.get(url, {"dataset_type": "raw-video"})) == [video]
    assert results(admin_client.get(url, {"role": "archive"})) == [archive]
    assert set(results(admin_client.get(url, {"backend": "filesystem"}))) == {rig, video}
    assert results(admin_client.get(url, {"writable__exact": "1"})) == [rig]
    assert results(admin_client.get(url, {"q": "video"})) == [video]


def test_a_valid_location_is_created(admin_client):
    response = admin_client.post(
        reverse("admin:catalog_storagelocation_add"),
        location_form(
            alias="raw-ephys-archive",
            role="archive",
            backend="globus",
            collection_id=PETREL,
            root_path="/ePhys/",
            local_path="",
        ),
    )

    assert response.status_code == 302
    location = StorageLocation.objects.get(alias="raw-ephys-archive")
    assert (location.collection_id, location.root_path) == (uuid.UUID(PETREL), "/ePhys")


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (
            {"backend": "globus", "collection_id": "petrel#ephys"},
            "collection_id",
            "Enter the collection UUID as 32 hexadecimal digits in five groups",
        ),
        ({"root_path": "ePhys"}, "root_path", "'ePhys' is relative; a root path starts with '/'"),
        ({"root_path": "\\ePhys"}, "root_path", "contains a backslash; use '/' to separate folders"),
        ({"root_path": "/ePhys/../Videos"}, "root_path", "contains '..'"),
        ({"local_path": ""}, "local_path", "A filesystem location needs its local path."),
        ({"local_path": "data/rig3"}, "local_path", "'data/rig3' is relative"),
        (
            {"backend": "globus", "collection_id": "", "local_path": ""},
            "collection_id",
            "A Globus location needs its collection UUID.",
        ),
        (
            {"dataset_type": "raw-spikes"},
            "dataset_type",
            "Unknown dataset type raw-spikes; choose one of raw-ephys (Raw electrophysiology)",
        ),
        ({"role": "scratch"}, "role", "Unknown role scratch; choose archive or local."),
        ({"backend": "s3"}, "backend", "Unknown backend s3; choose globus or filesystem."),
        ({"alias": "rig 3"}, "alias", "Enter a valid “slug”"),
    ],
)
def test_location_errors_are_shown_on_the_form_in_words(admin_client, values, field, message):
    response = admin_client.post(reverse("admin:catalog_storagelocation_add"), location_form(**values))

    assert response.status_code == 200
    errors = form_errors(response)
    assert any(message in error for error in errors[field]), errors
    assert "Please correct the error" in response.content.decode()
    assert not StorageLocation.objects.exists()


def test_a_second_archive_for_a_dataset_type_is_a_form_error(admin_client):
    GlobusLocationFactory(alias="raw-ephys-archive", role=LocationRole.ARCHIVE, collection_id=PETREL)

    response = admin_client.post(
        reverse("admin:catalog_storagelocation_add"),
        location_form(
            alias="second-archive", role="archive", backend="globus", collection_id=PETREL, local_path=""
        ),
    )

    assert response.status_code == 200
    assert form_errors(response)["__all__"] == ["There is already an archive location for this dataset type."]
    assert StorageLocation.objects.count() == 1


def test_a_duplicate_alias_is_a_form_error(admin_client):
    StorageLocationFactory(alias="rig-3-ephys")

    response = admin_client.post(reverse("admin:catalog_storagelocation_add"), location_form())

    assert response.status_code == 200
    assert form_errors(response)["alias"] == ["Storage location with this Alias already exists."]


# File types, subjects and sessions


def test_file_types_are_filtered_by_dataset_type_and_searched(admin_client):
    url = reverse("admin:catalog_filetype_changelist")

    video = results(admin_client.get(url, {"dataset_type": "raw-video"}))
    found = results(admin_client.get(url, {"q": "*.ap.bin"}))

    assert {file_type.name for file_type in video} == {
        "tracking-video-map",
        "tracking-video-trial",
        "tracking-video-unknown",
    }
    assert [file_type.name for file_type in found] == ["ephys-raw-neuropixels-ap-bin"]


def test_subjects_are_found_by_water_restriction_number_or_subject_id(admin_client):
    dl59 = SubjectFactory(water_restriction_number="dl59", subject_id=407513)
    sc026 = SubjectFactory(water_restriction_number="SC026", subject_id=456772)
    url = reverse("admin:catalog_subject_changelist")

    assert results(admin_client.get(url, {"q": "DL59"})) == [dl59]
    assert results(admin_client.get(url, {"q": "456772"})) == [sc026]
    assert results(admin_client.get(url, {"q": "4567"})) == []


def test_a_subject_differing_only_in_case_is_a_form_error(admin_client):
    SubjectFactory(water_restriction_number="dl59")

    response = admin_client.post(
        reverse("admin:catalog_subject_add"),
        {
            "water_restriction_number": "DL59",
            "subject_id": "",
            "details": "",
            "sessions-TOTAL_FORMS": "0",
            "sessions-INITIAL_FORMS": "0",
            "_save": "Save",
        },
    )

    assert response.status_code == 200
    assert "A subject with this water restriction number already exists." in response.content.decode()
    assert Subject.objects.count() == 1


def test_sessions_are_found_by_subject_date_and_rig(admin_client):
    dl59 = SubjectFactory(water_restriction_number="dl59")
    july = SessionFactory(subject=dl59, session_date=datetime.date(2019, 7, 31), rig="rig-3")
    other = SessionFactory(session_date=datetime.date(2020, 1, 5), rig="rig-1")
    url = reverse("admin:catalog_session_changelist")

    assert results(admin_client.get(url, {"q": "dl59"})) == [july]
    assert results(admin_client.get(url, {"rig": "rig-1"})) == [other]
    assert results(admin_client.get(url, {"session_date__year": "2019", "session_date__month": "7"})) == [
        july
    ]


def test_a_bad_session_ident_is_a_form_error(admin_client):
    subject = SubjectFactory()

    response = admin_client.post(
        reverse("admin:catalog_session_add"),
        {
            "subject": subject.pk,
            "session_date": "2019-07-31",
            "ident": "sur face",
            "session_number": "",
            "session_time": "",
            "rig": "",
            "notes": "",
            "_save": "Save",
        },
    )

    assert response.status_code == 200
    assert "An ident is letters and digits only" in response.content.decode()
    assert not Session.objects.exists()


# Raw files and replicas


def test_raw_files_and_replicas_can_be_looked_at_but_not_added(admin_client):
    replica = ReplicaFactory()

    pages = [
        reverse("admin:catalog_rawfile_changelist"),
        reverse("admin:catalog_rawfile_change", args=[replica.file.pk]),
        reverse("admin:catalog_replica_changelist"),
        reverse("admin:catalog_replica_change", args=[replica.pk]),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
    assert admin_client.get(reverse("admin:catalog_rawfile_add")).status_code == 403
    assert admin_client.get(reverse("admin:catalog_replica_add")).status_code == 403


def test_raw_file_pages_use_id_fields_and_show_the_copies(admin_client):
    replica = ReplicaFactory()

    response = admin_client.get(reverse("admin:catalog_rawfile_change", args=[replica.file.pk]))

    content = response.content.decode()
    assert 'class="vForeignKeyRawIdAdminField"' in content
    assert replica.location.alias in content


def test_raw_files_are_filtered_by_dataset_type(admin_client):
    ephys = RawFileFactory()
    RawFileFactory(
        dataset_type="raw-video",
        session=SessionFactory(subject=SubjectFactory(water_restriction_number="dl59")),
        subpath="dl59/20190731/video/dl59_side_108-0000.avi",
    )

    response = admin_client.get(reverse("admin:catalog_rawfile_changelist"), {"dataset_type": "raw-ephys"})

    assert results(response) == [ephys]


# Users and roles


def user_form(user, **values):
    data = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": user.email,
        "role": user.role,
        "is_active": "on",
        "_save": "Save",
    }
    data.update(values)
    return data


def test_an_admin_makes_a_viewer_an_admin_and_staff_follows(admin_client):
    member = UserFactory(role=Role.VIEWER)

    response = admin_client.post(
        reverse("admin:archive_portal_user_change", args=[member.pk]), user_form(member, role="admin")
    )

    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.role, member.is_staff) == (Role.ADMIN, True)

    admin_client.post(
        reverse("admin:archive_portal_user_change", args=[member.pk]), user_form(member, role="viewer")
    )
    member.refresh_from_db()
    assert (member.role, member.is_staff) == (Role.VIEWER, False)


def test_users_are_filtered_by_role(admin_client, viewer, archivist):
    response = admin_client.get(reverse("admin:archive_portal_user_changelist"), {"role__exact": "archivist"})

    assert results(response) == [archivist]


def test_an_admin_adds_a_user_with_a_role(admin_client):
    response = admin_client.post(
        reverse("admin:archive_portal_user_add"),
        {
            "username": "new@lab.example.org",
            "email": "new@lab.example.org",
            "role": "archivist",
            "usable_password": "false",
            "password1": "",
            "password2": "",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    user = get_user_model().objects.get(username="new@lab.example.org")
    assert (user.role, user.is_staff, user.has_usable_password()) == (Role.ARCHIVIST, False, False)


def test_an_admin_by_role_cannot_make_superusers_or_edit_one(role_admin_client, admin_user):
    member = UserFactory(role=Role.VIEWER)

    role_admin_client.post(
        reverse("admin:archive_portal_user_change", args=[member.pk]),
        user_form(member, is_superuser="on"),
    )
    superuser_page = role_admin_client.get(reverse("admin:archive_portal_user_change", args=[admin_user.pk]))
    superuser_post = role_admin_client.post(
        reverse("admin:archive_portal_user_change", args=[admin_user.pk]),
        user_form(admin_user, role="viewer"),
    )

    member.refresh_from_db()
    admin_user.refresh_from_db()
    assert member.is_superuser is False
    assert superuser_page.status_code == 200 and 'name="role"' not in superuser_page.content.decode()
    assert superuser_post.status_code == 403
    assert admin_user.role == Role.ADMIN


# The admin change log


def test_a_change_through_the_admin_is_logged_and_shown_in_the_change_log(admin_client, admin_user):
    location = StorageLocationFactory(alias="rig-1", local_path="/data/rig1")

    admin_client.post(
        reverse("admin:catalog_storagelocation_change", args=[location.pk]),
        location_form(alias="rig-1", local_path="/data/rig1/ephys"),
    )

    entry = LogEntry.objects.get()
    assert (entry.user, entry.action_flag, entry.object_id, entry.object_repr) == (
        admin_user,
        CHANGE,
        str(location.pk),
        "rig-1",
    )
    assert entry.get_change_message() == "Changed Local path."
    log = admin_client.get(reverse("admin:admin_logentry_changelist"))
    content = log.content.decode()
    assert "Admin change log" in content
    assert "Changed Local path." in content
    assert reverse("admin:catalog_storagelocation_change", args=[location.pk]) in content


def test_the_change_log_is_read_only(admin_client):
    location = StorageLocationFactory()
    admin_client.post(reverse("admin:catalog_storagelocation_delete", args=[location.pk]), {"post": "yes"})
    entry = LogEntry.objects.get()

    page = admin_client.get(reverse("admin:admin_logentry_change", args=[entry.pk]))

    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.get(reverse("admin:admin_logentry_add")).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:admin_logentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert LogEntry.objects.filter(pk=entry.pk).exists()


# Importing sessions from CSV


def upload(text, name="sessions.csv"):
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def test_the_session_list_links_to_the_csv_import(admin_client):
    response = admin_client.get(reverse("admin:catalog_session_changelist"))

    assert reverse("admin:catalog_session_import") in response.content.decode()
    assert "Import sessions from CSV" in response.content.decode()


def test_the_import_page_shows_the_expected_columns(admin_client):
    response = admin_client.get(reverse("admin:catalog_session_import"))

    assert response.status_code == 200
    assert CSV_HEADER.replace(",", ", ") in response.content.decode()


def test_an_uploaded_file_is_imported_and_logged(admin_client, admin_user):
    csv_text = (
        f"{CSV_HEADER}\r\n407513,dl59,2019-07-31,,1,14:05,rig-3\r\n407513,dl59,2019-08-01,,2,,rig-3\r\n"
    )

    response = admin_client.post(reverse("admin:catalog_session_import"), {"csv_file": upload(csv_text)})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:catalog_session_changelist")
    assert [str(message) for message in get_messages(response.wsgi_request)] == [
        "Imported sessions.csv. Sessions: 2 created, 0 updated, 0 unchanged. Subjects: 1 created, 0 updated."
    ]
    assert Session.objects.filter(subject__water_restriction_number="dl59").count() == 2
    entries = LogEntry.objects.filter(user=admin_user, action_flag=ADDITION)
    assert sorted(entry.object_repr for entry in entries) == [
        "dl59 (407513)",
        "dl59 2019-07-31",
        "dl59 2019-08-01",
    ]
    assert {entry.get_change_message() for entry in entries} == {"Imported from sessions.csv."}


def test_a_refused_upload_lists_every_problem_and_imports_nothing(admin_client):
    csv_text = "\n".join(
        [
            CSV_HEADER,
            "407513,dl59,2019-07-31,,1,,",
            "407514,dl60,2019-02-30,,1,,",
            "407515,d-61,2019-07-31,,,,",
        ]
    )

    response = admin_client.post(reverse("admin:catalog_session_import"), {"csv_file": upload(csv_text)})

    assert response.status_code == 200
    content = response.content.decode()
    assert "Nothing was imported" in content
    assert "line 3: session_date &#x27;2019-02-30&#x27; is not a real calendar date" in content
    assert "line 4: water_restriction_number &#x27;d-61&#x27; is not letters followed by digits" in content
    assert not Subject.objects.exists()
    assert not LogEntry.objects.exists()


def test_an_import_without_a_file_asks_for_one(admin_client):
    response = admin_client.post(reverse("admin:catalog_session_import"), {})

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()


def test_the_import_page_is_for_admins_only(viewer_client):
    response = viewer_client.get(reverse("admin:catalog_session_import"))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
