"""The dashboard in Chromium, with a real qcluster worker copying real files:
log in, find a subject, archive a session and watch it finish, retrieve a
file and see it arrive, cancel a job, and a viewer who cannot archive.

Screenshots of the main pages go to test-artifacts/screenshots/.
"""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from catalog.models import Replica
from tests.factories import UserFactory
from tests.test_pages import build_catalog
from tests.transfer_factories import ensure_file_types
from tests.worker import start_worker  # noqa: F401 - fixture
from transfers.models import JobState, TransferJob

pytest_plugins = ["tests.browser"]
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def lab(transactional_db, tmp_path):
    """Subject dl1 with three sessions of four files on the rig disk, the first
    also in the archive, every file real; and a writable scratch disk."""
    ensure_file_types()
    built = build_catalog(
        tmp_path, subjects=1, sessions=3, files=4, archived=1, prefix="dl", write_files=True
    )
    build_catalog(tmp_path, subjects=2, sessions=2, files=2, prefix="SC", write_files=True)
    return built


def log_in(page, live_server, username):
    page.goto(f"{live_server.url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")


def session_card(page, session):
    return page.locator(f"#session-{session.pk}")


def test_archivist_archives_a_session_and_retrieves_a_file(page, live_server, screenshot, lab, start_worker):  # noqa: F811
    start_worker()
    UserFactory(username="ada@lab.example.org", role="archivist")
    log_in(page, live_server, "ada@lab.example.org")

    # Subjects: live search narrows the list as one types.
    page.get_by_role("searchbox").fill("dl")
    page.wait_for_url(re.compile(r".*\?q=dl$"))
    rows = page.locator("#subject-rows tbody tr")
    assert rows.count() == 1
    assert "33%" in rows.first.inner_text()
    page.get_by_role("searchbox").fill("")
    page.wait_for_url(re.compile(r".*\?q=$"))
    assert page.locator("#subject-rows tbody tr").count() == 3
    screenshot("dashboard-subjects")

    page.get_by_role("link", name="dl1").click()
    page.wait_for_url(f"**{reverse('catalog:subject', args=['dl1'])}")
    first, second, _ = lab.sessions
    assert "archived" in session_card(page, first).inner_text()
    assert "local only" in session_card(page, second).inner_text()
    session_card(page, first).get_by_text("4 files, 4 archived").click()
    page.locator(f"#session-{first.pk}-files").wait_for()
    screenshot("dashboard-subject")

    # Archive without a page reload, then watch the progress until it is archived.
    page.evaluate("window.keptAcrossTheClick = true")
    session_card(page, second).get_by_role("button", name="Archive").click()
    status = page.locator(f"#session-{second.pk}-status")
    status.get_by_text("archived", exact=True).wait_for(timeout=60_000)
    # Its card then reloads with the new copies.
    session_card(page, second).get_by_text("4 files, 4 archived").wait_for()
    assert page.evaluate("window.keptAcrossTheClick") is True
    assert status.locator("[hx-trigger]").count() == 0
    screenshot("dashboard-subject-archived")
    job = TransferJob.objects.get(session=second)
    assert job.state == JobState.SUCCEEDED
    for raw_file in second.files.all():
        assert (Path(lab.archive.local_path) / raw_file.subpath).is_file()
    assert Replica.objects.filter(file__session=second, location=lab.archive).count() == 4

    # Search, pick one archived file, preview, confirm, and see it arrive.
    page.get_by_role("link", name="Search & retrieve", exact=True).click()
    page.get_by_label("Subjects").fill("dl1")
    page.get_by_label("Subjects").press("Enter")
    page.locator("#retrieve-form").wait_for()
    assert page.locator("tr.session-row").count() == 3
    page.locator(f"#select-session-{first.pk}").locator("xpath=ancestor::tbody").get_by_text(
        "Choose single files"
    ).click()
    wanted = first.files.order_by("subpath").first()
    page.locator(f"input[name=file][value='{wanted.pk}']").check()
    page.get_by_label("Retrieve to").select_option("scratch-ephys")
    assert page.locator("#destination option").all_inner_texts()[1:] == ["scratch-ephys · raw-ephys"]
    page.get_by_role("button", name="Preview retrieval").click()
    preview = page.locator("#retrieval-preview")
    preview.wait_for()
    assert "1 file · 1.0 KB will be copied from archive-ephys" in preview.inner_text()
    assert "0 already at scratch-ephys" in preview.inner_text()
    screenshot("dashboard-search-preview")
    assert not TransferJob.objects.filter(kind="retrieve").exists()

    preview.get_by_role("button", name="Queue retrieval of 1 file").click()
    page.wait_for_url(re.compile(r".*/transfers/jobs/\d+/$"))
    page.locator("#job-live .job-state .badge.succeeded").wait_for(timeout=60_000)
    assert page.locator("#job-live[hx-trigger]").count() == 0
    assert "All files are at scratch-ephys." in page.locator("#job-live").inner_text()
    screenshot("dashboard-job")
    arrived = Path(lab.scratch.local_path) / wanted.subpath
    assert arrived.is_file() and arrived.stat().st_size == wanted.size

    page.get_by_role("link", name="Transfers", exact=True).click()
    assert page.locator("table.jobs tbody tr").count() == 2
    assert page.locator("#job-table[hx-trigger]").count() == 0
    screenshot("dashboard-transfers")
    page.get_by_label("State").select_option("failed")
    page.wait_for_url(re.compile(r".*\?state=failed"))
    page.get_by_text("No transfer matches these filters.").wait_for()
    page.get_by_label("State").select_option("succeeded")
    page.wait_for_url(re.compile(r".*\?state=succeeded"))
    assert page.locator("table.jobs tbody tr").count() == 2


def test_transfers_update_live_and_rest_in_hidden_tabs(page, live_server, screenshot, lab, start_worker):  # noqa: F811
    UserFactory(username="ada@lab.example.org", role="archivist")
    log_in(page, live_server, "ada@lab.example.org")
    second = lab.sessions[1]
    page.goto(f"{live_server.url}{reverse('catalog:subject', args=['dl1'])}")
    session_card(page, second).get_by_role("button", name="Archive").click()
    page.locator(f"#session-{second.pk}-status progress").wait_for()
    job = TransferJob.objects.get(session=second)

    page.get_by_role("link", name="Transfers", exact=True).click()
    table = page.locator("#job-table")
    assert table.get_attribute("hx-trigger").startswith("every 2s [!document.hidden]")
    assert "Queued" in page.locator(f"#job-row-{job.pk}").inner_text()
    screenshot("dashboard-transfers-live")

    # A hidden tab asks nothing; when it shows again it catches up at once.
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/transfers/" in request.url else None)
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(4500)
    assert polls == []
    start_worker()
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.locator(f"#job-row-{job.pk} .badge.succeeded").wait_for(timeout=60_000)
    assert polls
    assert page.locator("#job-table[hx-trigger]").count() == 0
    count = len(polls)
    page.wait_for_timeout(4500)
    assert len(polls) == count


def test_requester_cancels_a_queued_retrieval(page, live_server, screenshot, lab):
    # No worker runs: the retrieval stays queued until it is canceled.
    viewer = UserFactory(username="grace@lab.example.org", role="viewer")
    log_in(page, live_server, viewer.username)
    page.goto(f"{live_server.url}{reverse('catalog:search')}?subjects=dl1")
    page.locator(f"#select-session-{lab.sessions[0].pk}").check()
    page.get_by_label("Retrieve to").select_option("scratch-ephys")
    page.get_by_role("button", name="Preview retrieval").click()
    page.get_by_role("button", name="Queue retrieval of 4 files").click()
    page.wait_for_url(re.compile(r".*/transfers/jobs/\d+/$"))
    assert "Queued" in page.locator("#job-live .job-state .badge").inner_text()
    assert page.locator("#job-live").get_attribute("hx-trigger").startswith("every 2s")
    screenshot("dashboard-job-queued")

    page.get_by_role("button", name="Cancel job").click()
    page.get_by_text(re.compile(r"Job #\d+ is canceled\.")).wait_for()
    assert page.locator("#job-live .job-state .badge").inner_text() == "Canceled"
    assert page.locator("#job-live[hx-trigger]").count() == 0
    assert TransferJob.objects.get().state == JobState.CANCELED
    assert not (Path(lab.scratch.local_path) / lab.files[0].subpath).exists()


def test_a_viewer_cannot_archive(page, live_server, screenshot, lab):
    UserFactory(username="grace@lab.example.org", role="viewer")
    log_in(page, live_server, "grace@lab.example.org")
    page.goto(f"{live_server.url}{reverse('catalog:subject', args=[lab.subjects[0].subject_id])}")
    assert page.get_by_role("button", name="Archive").count() == 0
    assert "local only" in session_card(page, lab.sessions[1]).inner_text()
    screenshot("dashboard-subject-viewer")

    # A hand-made request, with the page's CSRF token, is refused in words.
    answer = page.evaluate(
        """async (url) => {
            const headers = JSON.parse(document.body.getAttribute("hx-headers"));
            const response = await fetch(url, {method: "POST", headers: {...headers, "HX-Request": "true"}});
            return [response.status, await response.text()];
        }""",
        reverse("transfers:archive_session", args=[lab.sessions[1].pk]),
    )
    assert answer[0] == 200 and "Only archivists can archive sessions" in answer[1]
    assert not TransferJob.objects.exists()
    assert not any((Path(lab.archive.local_path) / f.subpath).exists() for f in lab.sessions[1].files.all())
