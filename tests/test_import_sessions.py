"""Importing subjects and sessions from the lab's CSV file (`import_sessions`)."""

import datetime
import io

import pytest
from django.core.management import CommandError, call_command

from catalog.imports import ImportRefused, import_sessions
from catalog.models import Session, Subject
from tests.factories import SessionFactory, SubjectFactory

HEADER = "subject_id,water_restriction_number,session_date,ident,session_number,session_time,rig"

pytestmark = pytest.mark.django_db


def write_csv(tmp_path, *lines, name="sessions.csv", newline="\n", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(newline.join(lines).encode(encoding) + newline.encode())
    return path


def run_import(path):
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("import_sessions", str(path), stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def refused_import(path):
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("import_sessions", str(path), stdout=stdout, stderr=stderr)
    return str(refused.value), stderr.getvalue()


def test_import_creates_subjects_and_sessions(tmp_path):
    path = write_csv(
        tmp_path,
        HEADER,
        "407513,dl59,2019-07-31,,1,14:05,rig-3",
        "407513,dl59,2019-07-31,surface,2,16:30:15,rig-3",
        ",SC026,2019-11-12,1,,,",
    )

    out, err = run_import(path)

    assert "Sessions: 3 created, 0 updated, 0 unchanged. Subjects: 2 created, 0 updated." in out
    assert err == ""
    dl59 = Subject.objects.get(water_restriction_number="dl59")
    assert dl59.subject_id == 407513
    assert Subject.objects.get(water_restriction_number="SC026").subject_id is None
    first, surface = dl59.sessions.order_by("ident")
    assert (first.session_date, first.ident, first.session_number) == (datetime.date(2019, 7, 31), "", 1)
    assert first.session_time == datetime.time(14, 5)
    assert first.rig == "rig-3"
    assert (surface.ident, surface.session_number, surface.session_time) == (
        "surface",
        2,
        datetime.time(16, 30, 15),
    )
    sc026 = Session.objects.get(subject__water_restriction_number="SC026")
    assert (sc026.ident, sc026.session_number, sc026.session_time, sc026.rig) == ("1", None, None, "")


def test_reimporting_the_same_file_changes_nothing(tmp_path):
    path = write_csv(tmp_path, HEADER, "407513,dl59,2019-07-31,,1,14:05,rig-3", ",dl59,2019-08-01,,2,,rig-3")
    run_import(path)
    before = list(Session.objects.values().order_by("pk"))

    out, _ = run_import(path)

    assert "Sessions: 0 created, 0 updated, 2 unchanged. Subjects: 0 created, 0 updated." in out
    assert list(Session.objects.values().order_by("pk")) == before
    assert Subject.objects.count() == 1


def test_existing_subject_is_matched_whatever_the_case_and_keeps_its_spelling(tmp_path):
    subject = SubjectFactory(water_restriction_number="dl59", subject_id=407513)
    path = write_csv(tmp_path, HEADER, "407513,DL59,2019-07-31,,,,", ",Dl59,2019-08-01,,,,")

    out, _ = run_import(path)

    assert "Subjects: 0 created, 0 updated." in out
    assert Subject.objects.get().water_restriction_number == "dl59"
    assert subject.sessions.count() == 2


def test_changed_values_update_the_session_and_empty_cells_keep_what_is_stored(tmp_path):
    session = SessionFactory(
        subject=SubjectFactory(water_restriction_number="dl59", subject_id=None),
        session_date=datetime.date(2019, 7, 31),
        ident="",
        session_number=4,
        session_time=datetime.time(9, 0),
        rig="rig-1",
        notes="good session",
    )
    path = write_csv(tmp_path, HEADER, "407513,dl59,2019-07-31,,,,rig-2")

    out, _ = run_import(path)

    assert "Sessions: 0 created, 1 updated, 0 unchanged. Subjects: 0 created, 1 updated." in out
    session.refresh_from_db()
    assert (session.rig, session.session_number, session.session_time) == ("rig-2", 4, datetime.time(9, 0))
    assert session.notes == "good session"
    assert session.subject.subject_id == 407513


def test_subject_id_alone_names_an_existing_subject(tmp_path):
    subject = SubjectFactory(water_restriction_number="tw5", subject_id=400001)
    path = write_csv(tmp_path, HEADER, "400001,,2020-01-02,,,,")

    run_import(path)

    assert subject.sessions.get().session_date == datetime.date(2020, 1, 2)


def test_a_file_with_bad_lines_writes_nothing_and_lists_every_bad_line(tmp_path):
    SubjectFactory(water_restriction_number="dl59", subject_id=407513)
    path = write_csv(
        tmp_path,
        HEADER,
        "407520,tw70,2019-07-31,,,,rig-1",  # 2: good; must not be written
        "407521,tw71,07/31/2019,,,,",  # 3: bad date
        "407522,tw72,2019-02-30,,,,",  # 4: impossible date
        "407523,tw-73,2019-07-31,,,,",  # 5: bad water restriction number
        "abc,tw74,2019-07-31,,,,",  # 6: subject_id not an integer
        "407513,dl60,2019-07-31,,,,",  # 7: h2o disagrees with the catalog's subject 407513
        "407520,tw70,2019-07-31,,,,rig-1",  # 8: duplicate of line 2
        "407525,tw75,2019-07-31,sur_face,,,",  # 9: bad ident
        "407526,tw76,2019-07-31,,,25:61,",  # 10: bad time
        "407527,tw77,2019-07-31,,one,,",  # 11: bad session number
        "407528,tw78,2019-07-31,,",  # 12: too few values
    )

    message, err = refused_import(path)

    assert "Nothing was imported: 10 problems" in message
    lines = err.splitlines()
    expected = [
        "line 3: session_date '07/31/2019' is not a date in YYYY-MM-DD form",
        "line 4: session_date '2019-02-30' is not a real calendar date",
        "line 5: water_restriction_number 'tw-73' is not letters followed by digits",
        "line 6: subject_id 'abc' is not a whole number",
        "line 7: subject_id 407513 is dl59 in the catalog, not dl60",
        "line 8: duplicate of line 2 (the same subject, session_date and ident)",
        "line 9: ident 'sur_face' may contain only letters and digits",
        "line 10: session_time '25:61' is not a time of day as HH:MM or HH:MM:SS",
        "line 11: session_number 'one' is not a whole number",
        "line 12: 5 values where the header has 7 columns",
    ]
    assert len(lines) == len(expected)
    for line, reason in zip(lines, expected, strict=True):
        assert reason in line
    assert Subject.objects.count() == 1
    assert Session.objects.count() == 0


def test_every_problem_of_one_line_is_listed(tmp_path):
    path = write_csv(tmp_path, HEADER, "x1,tw-1,2019-13-01,a b,,7pm,")

    _, err = refused_import(path)

    assert "line 2: water_restriction_number 'tw-1'" in err
    assert "line 2: subject_id 'x1' is not a whole number" in err
    assert "line 2: session_date '2019-13-01' is not a real calendar date" in err
    assert "line 2: ident 'a b' may contain only letters and digits" in err
    assert "line 2: session_time '7pm'" in err


def test_names_and_ids_must_agree_within_the_file_and_with_the_catalog(tmp_path):
    SubjectFactory(water_restriction_number="SC026", subject_id=456772)
    path = write_csv(
        tmp_path,
        HEADER,
        "407600,tw80,2019-07-01,,,,",
        "407601,tw80,2019-07-02,,,,",  # 3: tw80 was given id 407600 on line 2
        "407600,tw81,2019-07-03,,,,",  # 4: 407600 is tw80 on line 2
        "456999,sc026,2019-07-04,,,,",  # 5: SC026 has id 456772 in the catalog
        "999999,,2019-07-05,,,,",  # 6: unknown id without a name
        ",,2019-07-06,,,,",  # 7: no subject at all
    )

    _, err = refused_import(path)

    assert "line 3: water_restriction_number tw80 has subject_id 407600 on line 2, not 407601" in err
    assert "line 4: subject_id 407600 is tw80 on line 2, not tw81" in err
    assert "line 5: water_restriction_number sc026 has subject_id 456772 in the catalog, not 456999" in err
    assert "line 6: subject_id 999999 is not in the catalog; give its water_restriction_number" in err
    assert "line 7: neither water_restriction_number nor subject_id is given" in err
    assert Subject.objects.count() == 1


def test_duplicates_are_found_whatever_the_case_of_the_water_restriction_number(tmp_path):
    path = write_csv(tmp_path, HEADER, ",dl59,2019-07-31,1,,,", ",DL59,2019-07-31,1,,,")

    _, err = refused_import(path)

    assert "line 3: duplicate of line 2" in err


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (
            "subject_id,water_restriction_number,session_date,ident,session_number,rig",
            "missing column(s): session_time",
        ),
        (HEADER + ",notes", "unknown column(s): notes"),
        (HEADER + ",rig", "column(s) given twice: rig"),
    ],
)
def test_the_header_must_name_exactly_the_columns(tmp_path, header, reason):
    path = write_csv(tmp_path, header, "407513,dl59,2019-07-31,,,,,")

    _, err = refused_import(path)

    assert f"line 1: The header does not match ({reason})" in err
    assert "Expected exactly: subject_id, water_restriction_number, session_date" in err
    assert Subject.objects.count() == 0


def test_a_file_without_header_is_refused(tmp_path):
    path = write_csv(tmp_path, "407513,dl59,2019-07-31,,1,14:05,rig-3")

    _, err = refused_import(path)

    assert "unknown column(s): 407513, dl59, 2019-07-31" in err


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    _, err = refused_import(path)

    assert "The file is empty; its first line must be the header" in err


def test_columns_may_come_in_any_order_and_blank_lines_are_skipped(tmp_path):
    path = write_csv(
        tmp_path,
        "rig, session_date ,Water_Restriction_Number,ident,subject_id,session_time,session_number",
        "",
        "rig-9,2019-07-31,dl59,,407513,08:00,1",
        ",,,,,,",
    )

    out, _ = run_import(path)

    assert "Sessions: 1 created" in out
    assert Session.objects.get().rig == "rig-9"


def test_utf8_bom_and_windows_line_endings_are_accepted(tmp_path):
    path = write_csv(
        tmp_path,
        HEADER,
        "407513,dl59,2019-07-31,,1,14:05,Salle B1 – rig 2",
        newline="\r\n",
        encoding="utf-8-sig",
    )

    out, _ = run_import(path)

    assert "Sessions: 1 created" in out
    session = Session.objects.get()
    assert session.rig == "Salle B1 – rig 2"
    assert session.session_time == datetime.time(14, 5)


def test_a_file_that_is_not_utf8_is_refused_with_what_to_do(tmp_path):
    path = write_csv(tmp_path, HEADER, "407513,dl59,2019-07-31,,1,14:05,Salle é", encoding="latin-1")

    _, err = refused_import(path)

    assert "The file is not UTF-8 text" in err
    assert "save it as 'CSV UTF-8'" in err


def test_a_missing_file_is_reported():
    with pytest.raises(CommandError, match="Cannot read /nonexistent/sessions.csv: No such file"):
        call_command(
            "import_sessions", "/nonexistent/sessions.csv", stdout=io.StringIO(), stderr=io.StringIO()
        )


def test_the_service_reads_text_and_reports_counts():
    SubjectFactory(water_restriction_number="dl59", subject_id=407513)
    text = f"{HEADER}\n407513,dl59,2019-07-31,,1,,\n407514,dl60,2019-07-31,,1,,\n"

    result = import_sessions(io.StringIO(text))

    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    assert [subject.water_restriction_number for subject in result.subjects_created] == ["dl60"]


def test_the_service_refusal_lists_problems_with_line_numbers():
    text = f"{HEADER}\n407513,dl59,2019-07-31,,1,,\n407514,dl60,2019-31-07,,1,,\n"

    with pytest.raises(ImportRefused) as refused:
        import_sessions(io.BytesIO(text.encode()))

    assert [(problem.line, problem.reason) for problem in refused.value.problems] == [
        (3, "session_date '2019-31-07' is not a real calendar date")
    ]
    assert Subject.objects.count() == 0
