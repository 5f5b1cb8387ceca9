"""factory-boy factories for the portal's models."""

import datetime

import factory
from django.contrib.auth import get_user_model

from archive_portal.models import Role
from catalog import naming
from catalog.models import (
    Backend,
    FileType,
    LocationRole,
    RawFile,
    Replica,
    ReplicaSource,
    ReplicaState,
    Session,
    StorageLocation,
    Subject,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"member{n}@lab.example.org")
    email = factory.LazyAttribute(lambda user: user.username)
    role = Role.VIEWER
    password = factory.django.Password("correct horse battery staple")


class SubjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subject

    water_restriction_number = factory.Sequence(lambda n: f"tw{n + 10}")
    subject_id = factory.Sequence(lambda n: 400000 + n)


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Session

    subject = factory.SubFactory(SubjectFactory)
    session_date = factory.Sequence(lambda n: datetime.date(2019, 7, 1) + datetime.timedelta(days=n))
    ident = ""
    rig = "rig-1"


class StorageLocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StorageLocation
        django_get_or_create = ("alias",)

    alias = factory.Sequence(lambda n: f"location-{n}")
    role = LocationRole.LOCAL
    dataset_type = naming.RAW_EPHYS
    backend = Backend.FILESYSTEM
    root_path = "/"
    local_path = factory.Sequence(lambda n: f"/tmp/portal-location-{n}")
    writable = False


class GlobusLocationFactory(StorageLocationFactory):
    backend = Backend.GLOBUS
    local_path = ""
    collection_id = factory.Faker("uuid4")
    root_path = "/ePhys"


def file_type_for(dataset_type, filename):
    return FileType.objects.get(name=naming.match_file_type(dataset_type, filename))


class RawFileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RawFile

    session = factory.SubFactory(SessionFactory)
    dataset_type = naming.RAW_EPHYS
    subpath = factory.LazyAttributeSequence(
        lambda f, n: (
            naming.session_folder(
                f.dataset_type,
                f.session.subject.water_restriction_number,
                f.session.session_date,
                f.session.ident,
            )
            + f"/file{n}.nidq.bin"
        )
    )
    file_type = factory.LazyAttribute(lambda f: file_type_for(f.dataset_type, f.subpath.rsplit("/", 1)[-1]))
    size = 1000


class ReplicaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Replica

    file = factory.SubFactory(RawFileFactory)
    location = factory.SubFactory(StorageLocationFactory)
    state = ReplicaState.PRESENT
    source = ReplicaSource.SCAN
