"""Every URL of the portal against the rules that keep it safe.

- Anonymous requests to the portal's pages go to the login page; the admin
  site sends them to its own login.
- A GET never changes anything; POST-only actions answer a GET with 405.
- Every action checks CSRF, and the role of whoever asks: a viewer cannot
  archive, cancel someone else's job, start discovery or reach the admin;
  an archivist cannot reach the admin. A refusal is a message or a 403, never
  a server error, and changes nothing.
- Error pages with DEBUG off show no traceback, setting or secret.
- Production settings: ``check --deploy`` with the production variables set
  finds nothing serious, the portal refuses to start without SECRET_KEY and
  says why, and REDIS_URL puts django-q2 on Redis (a real ``qcluster`` runs
  a task through it).

The table ``PORTAL_URLS`` must name every URL the portal routes to its own
views (``test_the_table_covers_every_portal_url`` fails when one is added
without a row), so a new page is audited by the same rules.
"""

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, path, reverse
from django_q.models import OrmQ

from archive_portal.models import GlobusToken, Role, User
from archive_portal.urls import urlpatterns as portal_urlpatterns
from catalog.models import DiscoveryRun, LocationRole, Replica, RunKind, Session
from tests.factories import SessionFactory, UserFactory
from tests.test_login import CLIENT_ID, CLIENT_SECRET, use_globus_client
from tests.transfer_factories import add_files, archived_session, ensure_file_types, filesystem_location
from tests.worker import start_worker  # noqa: F401 - fixture
from transfers.models import JobKind, JobState, TransferJob


# ------------------------------------------------------------------ the world
@pytest.fixture
def world(db, tmp_path, archivist):
    """A rig disk with a session to archive, the archive holding another session,
    a writable scratch disk and a read-only one, an archivist's job and a
    discovery run."""
    ensure_file_types()
    rig = filesystem_location(tmp_path, "rig-ephys")
    archive = filesystem_location(tmp_path, "archive-ephys", role=LocationRole.ARCHIVE)
    scratch = filesystem_location(tmp_path, "scratch-ephys", writable=True)
    readonly = filesystem_location(tmp_path, "readonly-ephys")
    session = SessionFactory()
    add_files(session, rig, count=2, on_disk=rig.local_path)
    stored, _ = archived_session(archive, count=2)
    others_job = TransferJob.objects.create(
        kind=JobKind.RETRIEVE, source=archive, destination=scratch, requested_by=archivist, label="theirs"
    )
    run = DiscoveryRun.objects.create(location=archive, kind=RunKind.DISCOVER, requested_by=archivist)
    return World(rig, archive, scratch, readonly, session, stored, others_job, run)


@dataclass
class World:
    rig: object
    archive: object
    scratch: object
    readonly: object
    session: Session
    archived: Session
    others_job: TransferJob
    run: DiscoveryRun

    def job_for(self, user):
        return TransferJob.objects.create(
            kind=JobKind.RETRIEVE, source=self.archive, destination=self.scratch, requested_by=user, label="mine"
        )


def snapshot():
    """Everything a request could change, except sessions and login times."""
    return {
        "jobs": sorted(TransferJob.objects.values_list("pk", "state", "cancel_requested")),
        "runs": sorted(DiscoveryRun.objects.values_list("pk", "state")),
        "queued tasks": OrmQ.objects.count(),
        "replicas": Replica.objects.count(),
        "sessions": Session.objects.count(),
        "users": sorted(User.objects.values_list("pk", "role", "is_staff", "is_superuser", "is_active")),
        "tokens": GlobusToken.objects.count(),
    }


# ------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Url:
    route: str  # as the resolver spells it
    url: object  # the URL to request, or a function of the world giving it
    post_only: bool = False

    def resolve(self, world):
        return self.url(world) if callable(self.url) else self.url


PORTAL_URLS = [
    Url("", "/"),
    Url("subjects/<str:key>/", lambda w: f"/subjects/{w.session.subject.water_restriction_number}/"),
    Url("sessions/<int:pk>/", lambda w: f"/sessions/{w.session.pk}/"),
    Url("sessions/<int:pk>/files/", lambda w: f"/sessions/{w.session.pk}/files/"),
    Url("search/", lambda w: f"/search/?subjects={w.archived.subject.water_restriction_number}"),
    Url("search/sessions/<int:pk>/files/", lambda w: f"/search/sessions/{w.archived.pk}/files/"),
    Url("transfers/", "/transfers/"),
    Url("transfers/jobs/<int:pk>/", lambda w: f"/transfers/jobs/{w.others_job.pk}/"),
    Url("transfers/jobs/<int:pk>/progress/", lambda w: f"/transfers/jobs/{w.others_job.pk}/progress/"),
    Url("transfers/jobs/<int:pk>/cancel/", lambda w: f"/transfers/jobs/{w.others_job.pk}/cancel/", True),
    Url("transfers/archive/<int:session_pk>/", lambda w: f"/transfers/archive/{w.session.pk}/", True),
    Url("transfers/retrieve/", "/transfers/retrieve/", True),
    Url("transfers/discovery/", "/transfers/discovery/"),
    Url("transfers/discovery/start/", "/transfers/discovery/start/", True),
    Url("transfers/discovery/<int:pk>/", lambda w: f"/transfers/discovery/{w.run.pk}/"),
]
GET_URLS = [u for u in PORTAL_URLS if not u.post_only]
POST_URLS = [u for u in PORTAL_URLS if u.post_only]

# Reachable without a login: allauth's entrance pages and the portal's own
# login views. Each is checked below for what it does on a GET.
PUBLIC_PREFIXES = ("accounts/",)


def routes(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if route == "admin/":
                continue
            yield from routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def test_the_table_covers_every_portal_url():
    portal = {route for route in routes(get_resolver().url_patterns) if not route.startswith(PUBLIC_PREFIXES)}
    assert portal == {u.route for u in PORTAL_URLS}


# ------------------------------------------------------------------ anonymous
def ids(urls):
    return [u.route or "/" for u in urls]


@pytest.mark.parametrize("entry", PORTAL_URLS, ids=ids(PORTAL_URLS))
def test_anonymous_requests_go_to_the_login_page(client, world, entry):
    url = entry.resolve(world)
    before = snapshot()
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith(reverse("account_login") + "?next="), (method, url)
    assert snapshot() == before


def test_anonymous_requests_to_the_admin_go_to_its_login(client, world):
    job_page = f"/admin/transfers/transferjob/{world.others_job.pk}/change/"
    for url in ("/admin/", "/admin/archive_portal/user/", job_page):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")


# ------------------------------------------------------------------ GET is safe
@pytest.mark.parametrize("role", [Role.VIEWER, Role.ARCHIVIST, Role.ADMIN])
@pytest.mark.parametrize("entry", GET_URLS, ids=ids(GET_URLS))
def test_a_get_changes_nothing(client, world, role, entry):
    client.force_login(UserFactory(role=role))
    before = snapshot()
    for htmx in (False, True):
        headers = {"HX-Request": "true"} if htmx else {}
        response = client.get(entry.resolve(world), headers=headers)
        assert response.status_code == 200, (entry.route, htmx, response.status_code)
    assert snapshot() == before


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ARCHIVIST, Role.ADMIN])
@pytest.mark.parametrize("entry", POST_URLS, ids=ids(POST_URLS))
def test_post_only_actions_refuse_a_get_with_405(client, world, role, entry):
    client.force_login(UserFactory(role=role))
    before = snapshot()
    for htmx in (False, True):
        headers = {"HX-Request": "true"} if htmx else {}
        assert client.get(entry.resolve(world), headers=headers).status_code == 405
    assert snapshot() == before


def test_logging_out_takes_a_post(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("account_logout")).status_code == 200
    assert client.get("/").status_code == 200  # still logged in
    client.post(reverse("account_logout"))
    assert client.get("/").status_code == 302


def test_a_globus_login_starts_only_with_a_post(client, db, settings):
    use_globus_client(settings)
    response = client.get("/accounts/globus/login/?process=login")
    assert response.status_code == 200  # a page with the button, not a redirect to Globus
    assert "<form" in response.content.decode()
    response = client.post("/accounts/globus/login/?process=login")
    assert response.status_code == 302 and CLIENT_ID in response["Location"]


@pytest.mark.parametrize("url", ["/accounts/globus/login/?process=login", "/accounts/globus/login/callback/?code=x"])
def test_globus_login_without_a_globus_client_is_a_message(client, db, settings, url):
    settings.GLOBUS_CLIENT_ID = settings.GLOBUS_CLIENT_SECRET = ""
    for method in ("get", "post"):
        response = getattr(client, method)(url, follow=True)
        assert response.status_code == 200
        assert "Globus login is not set up" in response.content.decode()


@pytest.mark.parametrize("url", ["/accounts/password/reset/", "/accounts/email/"])
@pytest.mark.parametrize("logged_in", [False, True])
def test_pages_that_would_send_email_say_the_portal_sends_none(client, viewer, mailoutbox, url, logged_in):
    if logged_in:
        client.force_login(viewer)
    for data in ({"email": viewer.email}, {"email": "someone@elsewhere.example", "action_add": ""}):
        response = client.post(url, data, follow=True)
        assert response.status_code == 200
        assert "The portal sends no email" in response.content.decode()
    assert client.get(url, follow=True).status_code == 200
    assert mailoutbox == []


# ------------------------------------------------------------------ CSRF
def post_data(world, entry):
    """A request each action would accept from an admin."""
    return {
        "transfers/retrieve/": {"session": [world.archived.pk], "destination": world.scratch.alias, "step": "confirm"},
        "transfers/discovery/start/": {"location": world.archive.pk},
    }.get(entry.route, {})


@pytest.mark.parametrize("entry", POST_URLS, ids=ids(POST_URLS))
def test_every_action_checks_csrf(world, admin_user, entry):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    before = snapshot()
    response = client.post(entry.resolve(world), post_data(world, entry))
    assert response.status_code == 403
    assert snapshot() == before


def test_the_admin_checks_csrf(admin_user, viewer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(f"/admin/archive_portal/user/{viewer.pk}/change/", {"role": Role.ADMIN})
    assert response.status_code == 403
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER


# ------------------------------------------------------------------ roles
def messages_of(response):
    return [str(message) for message in response.context["messages"]] if response.context else []


ARCHIVE = [
    (Role.VIEWER, False),
    (Role.ARCHIVIST, True),
    (Role.ADMIN, True),
]


@pytest.mark.parametrize(("role", "allowed"), ARCHIVE)
@pytest.mark.parametrize("htmx", [False, True])
def test_who_may_archive_a_session(client, world, role, allowed, htmx):
    client.force_login(UserFactory(role=role))
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.post(f"/transfers/archive/{world.session.pk}/", headers=headers, follow=not htmx)
    assert response.status_code == 200
    archived = TransferJob.objects.filter(kind=JobKind.ARCHIVE, session=world.session).exists()
    assert archived is allowed
    if not allowed:
        assert "Only archivists can archive" in response.content.decode()


CANCEL = [
    # (role, whose job, may cancel)
    (Role.VIEWER, "theirs", False),
    (Role.VIEWER, "own", True),
    (Role.ARCHIVIST, "theirs", True),
    (Role.ADMIN, "theirs", True),
]


@pytest.mark.parametrize(("role", "whose", "allowed"), CANCEL)
def test_who_may_cancel_a_job(client, world, role, whose, allowed):
    user = UserFactory(role=role)
    client.force_login(user)
    job = world.job_for(user) if whose == "own" else world.others_job
    response = client.post(f"/transfers/jobs/{job.pk}/cancel/", follow=True)
    assert response.status_code == 200
    job.refresh_from_db()
    assert (job.state == JobState.CANCELED) is allowed
    if not allowed:
        assert any("Only archivists, admins and the person who asked" in m for m in messages_of(response))


DISCOVERY = [
    (Role.VIEWER, False),
    (Role.ARCHIVIST, False),
    (Role.ADMIN, True),
]


@pytest.mark.parametrize(("role", "allowed"), DISCOVERY)
def test_who_may_start_discovery(client, world, role, allowed):
    client.force_login(UserFactory(role=role))
    page = client.get("/transfers/discovery/").content.decode()
    assert ('action="/transfers/discovery/start/"' in page) is allowed
    runs = DiscoveryRun.objects.count()
    response = client.post("/transfers/discovery/start/", {"location": world.rig.pk}, follow=True)
    assert response.status_code == 200  # a refusal is a message, never an error page
    assert ("Only admins start discovery runs." in response.content.decode()) is not allowed
    assert (DiscoveryRun.objects.count() == runs + 1) is allowed


ADMIN_SITE = [
    (Role.VIEWER, False),
    (Role.ARCHIVIST, False),
    (Role.ADMIN, True),
]
ADMIN_PAGES = [
    "/admin/",
    "/admin/archive_portal/user/",
    "/admin/admin/logentry/",
    "/admin/catalog/storagelocation/",
    "/admin/transfers/transferjob/",
]


@pytest.mark.parametrize(("role", "allowed"), ADMIN_SITE)
def test_who_reaches_the_admin_site(client, world, role, allowed):
    client.force_login(UserFactory(role=role))
    for url in ADMIN_PAGES:
        response = client.get(url)
        if allowed:
            assert response.status_code == 200, url
        else:
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ARCHIVIST])
def test_no_role_but_admin_changes_roles_through_the_admin(client, world, role):
    user = UserFactory(role=role)
    client.force_login(user)
    client.post(
        f"/admin/archive_portal/user/{user.pk}/change/",
        {"username": user.username, "role": Role.ADMIN, "is_active": "on"},
    )
    user.refresh_from_db()
    assert user.role == role and not user.is_staff


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ARCHIVIST, Role.ADMIN])
@pytest.mark.parametrize(("destination", "allowed"), [("scratch-ephys", True), ("readonly-ephys", False)])
def test_retrieval_goes_only_to_writable_locations(client, world, role, destination, allowed):
    client.force_login(UserFactory(role=role))
    data = {"session": [world.archived.pk], "destination": destination, "step": "confirm"}
    response = client.post("/transfers/retrieve/", data)
    assert response.status_code in (200, 302)
    assert TransferJob.objects.filter(destination__alias=destination).exists() is allowed
    if not allowed:
        assert "does not accept retrieved files" in response.content.decode()


def test_an_inactive_account_is_logged_out_everywhere(client, world, viewer):
    client.force_login(viewer)
    viewer.is_active = False
    viewer.save()
    for entry in PORTAL_URLS:
        response = client.post(entry.resolve(world)) if entry.post_only else client.get(entry.resolve(world))
        assert response.status_code == 302, entry.route
        assert response["Location"].startswith(reverse("account_login"))


# ------------------------------------------------------------------ error pages
def server_error(request):
    client_secret = CLIENT_SECRET  # noqa: F841 - what the report must not show
    raise RuntimeError("boom in a view")


def missing(request):
    from django.http import Http404

    raise Http404(f"nothing here for {CLIENT_SECRET}")


urlpatterns = [path("boom/", server_error), path("missing/", missing), *portal_urlpatterns]


@pytest.mark.urls(__name__)
def test_error_pages_with_debug_off_show_nothing_inside(db, settings, caplog):
    settings.DEBUG = False
    settings.GLOBUS_CLIENT_SECRET = CLIENT_SECRET
    client = Client(raise_request_exception=False)
    for url, status in (("/boom/", 500), ("/missing/", 404)):
        response = client.get(url)
        assert response.status_code == status
        body = response.content.decode()
        for leak in (CLIENT_SECRET, settings.SECRET_KEY, "Traceback", "boom in a view", "GLOBUS_CLIENT_SECRET"):
            assert leak not in body, (url, leak)
    assert CLIENT_SECRET not in caplog.text


# ------------------------------------------------------------------ production settings
BASE_DIR = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Variables that decide how the portal runs; each subprocess below sets its own.
PORTAL_VARIABLES = (
    "SECRET_KEY",
    "DEBUG",
    "PORTAL_DEVELOPMENT",
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "PORTAL_TOKEN_KEYS",
    "PORTAL_ALLOWED_DOMAINS",
    "PORTAL_ALLOWED_GLOBUS_GROUP",
    "GLOBUS_CLIENT_ID",
    "GLOBUS_CLIENT_SECRET",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "Q_NAME",
)
PRODUCTION = {
    "SECRET_KEY": "k7#Qv9!mZ2@xL4$wP8^rT1&yN6*bH3(jD5)sF0-gC2+eA9=uR7",
    "ALLOWED_HOSTS": "portal.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x",
    "PORTAL_TOKEN_KEYS": Fernet.generate_key().decode(),
    "GLOBUS_CLIENT_ID": CLIENT_ID,
    "GLOBUS_CLIENT_SECRET": CLIENT_SECRET,
    "PORTAL_ALLOWED_DOMAINS": "lab.org",
}


def manage(*args, **environment):
    """``manage.py *args`` in a fresh process with only ``environment`` set of the portal's variables."""
    # The browser fixtures relax Django's async safety for this test process only.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in PORTAL_VARIABLES and key != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    env.update(environment)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_with_production_variables_finds_nothing_serious():
    result = manage("check", "--deploy", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    # HSTS preload is a commitment to browsers; SECURE_HSTS_PRELOAD=1 opts in.
    found = {word.strip("():") for word in output.split() if word.startswith("(security.") or "portal." in word}
    assert found <= {"security.W021"}, output
    for value in (PRODUCTION["SECRET_KEY"], PRODUCTION["PORTAL_TOKEN_KEYS"], CLIENT_SECRET):
        assert value not in output


def test_check_deploy_names_each_missing_production_variable():
    for missing, problem in (("PORTAL_TOKEN_KEYS", "portal.E001"), ("GLOBUS_CLIENT_SECRET", "portal.E003")):
        environment = {key: value for key, value in PRODUCTION.items() if key != missing}
        result = manage("check", "--deploy", **environment)
        assert result.returncode != 0
        assert problem in result.stderr + result.stdout


def test_without_a_secret_key_the_portal_refuses_to_start_and_says_why():
    environment = {key: value for key, value in PRODUCTION.items() if key != "SECRET_KEY"}
    result = manage("check", **environment)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
    assert CLIENT_SECRET not in result.stderr and PRODUCTION["PORTAL_TOKEN_KEYS"] not in result.stderr
    assert "SECRET_KEY must be set" in manage("check", **environment, SECRET_KEY="  ").stderr
    assert manage("check", **environment, DEBUG="1").returncode == 0


BROKER_ROUND_TRIP = """
import django
django.setup()
from django_q.brokers import get_broker
broker = get_broker()
print(type(broker).__module__, type(broker).__name__)
broker.enqueue("ping")
task = broker.dequeue()
print(task[0][1].decode())
broker.acknowledge(task[0][0])
broker.delete_queue()
"""


def test_redis_url_puts_the_workers_on_redis():
    name = f"portal-test-{uuid.uuid4().hex[:8]}"
    # The browser fixtures relax Django's async safety for this test process only.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in PORTAL_VARIABLES and key != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", REDIS_URL=REDIS_URL, Q_NAME=name)
    result = subprocess.run(
        [sys.executable, "-c", BROKER_ROUND_TRIP], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django_q.brokers.redis_broker", "Redis", "ping"]


@pytest.mark.e2e
def test_a_qcluster_on_redis_runs_a_queued_task(start_worker):  # noqa: F811
    import redis
    from django_q.brokers.redis_broker import Redis
    from django_q.models import Success
    from django_q.tasks import async_task

    name = f"portal-test-{uuid.uuid4().hex[:8]}"
    worker = start_worker(REDIS_URL=REDIS_URL, Q_NAME=name)
    # This process runs on the ORM broker; hand the task to the worker's Redis queue directly.
    broker = Redis(list_key=name)
    broker.connection = redis.from_url(REDIS_URL)
    from django_q.conf import Conf

    prefix, Conf.PREFIX = Conf.PREFIX, name  # the signing salt the worker expects
    try:
        task_id = async_task("math.hypot", 3, 4, broker=broker, task_name="redis-e2e")
    finally:
        Conf.PREFIX = prefix
    assert broker.queue_size() <= 1
    try:
        worker.wait_for(lambda: Success.objects.filter(id=task_id).exists(), timeout=60)
    finally:
        broker.delete_queue()
    assert Success.objects.get(id=task_id).result == 5.0
    assert not OrmQ.objects.exists()  # nothing went through the database queue
    assert f"[django_q:{name}:q] running" in worker.log()  # the Redis queue's key


def test_the_start_up_check_ids_are_documented():
    in_code = set(re.findall(r'id="(portal\.[EW]\d{3})"', (BASE_DIR / "archive_portal/checks.py").read_text()))
    in_readme = set(re.findall(r"^\| `(portal\.[EW]\d{3})` \|", (BASE_DIR / "README.md").read_text(), re.M))
    assert in_code == in_readme
    assert in_code >= {"portal.E001", "portal.E002", "portal.E003", "portal.E004", "portal.W001", "portal.W002"}
