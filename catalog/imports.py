"""Import of subjects and their sessions from a CSV file the lab keeps.

The file has a header line with exactly these columns, in any order:
subject_id, water_restriction_number, session_date, ident, session_number,
session_time, rig. Each further line names one session.

An import is all or nothing: every line is checked before anything is written,
and a file with any bad line is refused as a whole with the list of every
problem and its line number. Re-importing the same file changes nothing.

Subjects are matched by water restriction number whatever its case (the case
stored first is kept) or by subject id; sessions by (subject, date, ident). An
empty cell never erases what the catalog already knows: it leaves the stored
value as it is.
"""

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower

from catalog import naming
from catalog.models import IDENT_PATTERN, Session, Subject

COLUMNS = (
    "subject_id",
    "water_restriction_number",
    "session_date",
    "ident",
    "session_number",
    "session_time",
    "rig",
)

_SUBJECT_MAX = Subject._meta.get_field("water_restriction_number").max_length
_IDENT_MAX = Session._meta.get_field("ident").max_length
_RIG_MAX = Session._meta.get_field("rig").max_length
_IDENT_RE = re.compile(IDENT_PATTERN, re.ASCII)
_ISO_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_TIME_RE = re.compile(r"[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?", re.ASCII)
_UNSIGNED_RE = re.compile(r"[0-9]+", re.ASCII)
# Subject ids and session numbers are stored as positive 32-bit integers.
_INTEGER_MAX = 2_147_483_647


@dataclass(frozen=True)
class Problem:
    """Why a line (or the file as a whole, when `line` is None) cannot be imported."""

    line: int | None
    reason: str

    def __str__(self):
        return f"line {self.line}: {self.reason}" if self.line is not None else self.reason


class ImportRefused(Exception):
    """The file was not imported; `problems` lists every reason, by line."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass
class ImportResult:
    """What an import did to the catalog."""

    subjects_created: list = field(default_factory=list)
    subjects_updated: list = field(default_factory=list)
    sessions_created: list = field(default_factory=list)
    sessions_updated: list = field(default_factory=list)
    sessions_unchanged: int = 0

    @property
    def created(self):
        return len(self.sessions_created)

    @property
    def updated(self):
        return len(self.sessions_updated)

    @property
    def unchanged(self):
        return self.sessions_unchanged

    def summary(self):
        return (
            f"Sessions: {self.created} created, {self.updated} updated, {self.unchanged} unchanged. "
            f"Subjects: {len(self.subjects_created)} created, {len(self.subjects_updated)} updated."
        )


@dataclass
class _Row:
    line: int
    water_restriction_number: str
    subject_id: int | None
    session_date: date | None
    ident: str
    session_number: int | None
    session_time: time | None
    rig: str
    subject_given: bool  # False when the subject columns themselves are bad


@dataclass
class _SubjectPlan:
    """A subject as the import will leave it: an existing row, or one to create."""

    water_restriction_number: str
    subject_id: int | None
    existing: Subject | None
    line: int | None  # the line that introduced it; None for a subject already in the catalog

    def where(self):
        return "in the catalog" if self.line is None else f"on line {self.line}"


def _read_text(fileobj) -> str:
    data = fileobj.read()
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ImportRefused(
                [
                    Problem(
                        None,
                        f"The file is not UTF-8 text (byte {data[error.start]:#04x} at position "
                        f"{error.start}); save it as 'CSV UTF-8' and import it again.",
                    )
                ]
            ) from error
    return data.removeprefix("\ufeff")


def _read_header(reader) -> list[str]:
    expected = ", ".join(COLUMNS)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRefused(
            [Problem(None, f"The file is empty; its first line must be the header: {expected}.")]
        ) from None
    names = [name.strip().lower() for name in header]
    problems = []
    duplicated = sorted({name for name in names if names.count(name) > 1})
    missing = [name for name in COLUMNS if name not in names]
    extra = [name or "(empty)" for name in names if name not in COLUMNS]
    if duplicated:
        problems.append(f"column(s) given twice: {', '.join(duplicated)}")
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if extra:
        problems.append(f"unknown column(s): {', '.join(extra)}")
    if problems:
        raise ImportRefused(
            [Problem(1, f"The header does not match ({'; '.join(problems)}). Expected exactly: {expected}.")]
        )
    return names


def _whole_number(text: str, what: str, example: str, problems: list[str]) -> int | None:
    if not text:
        return None
    if not _UNSIGNED_RE.fullmatch(text) or int(text) > _INTEGER_MAX:
        problems.append(f"{what} {text!r} is not a whole number (e.g. {example})")
        return None
    return int(text)


def _parse_date(text: str, problems: list[str]) -> date | None:
    if not text:
        problems.append("session_date is empty")
        return None
    if not _ISO_DATE_RE.fullmatch(text):
        problems.append(f"session_date {text!r} is not a date in YYYY-MM-DD form")
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(f"session_date {text!r} is not a real calendar date")
        return None


def _parse_time(text: str, problems: list[str]) -> time | None:
    if not text:
        return None
    if _TIME_RE.fullmatch(text):
        form = "%H:%M:%S" if text.count(":") == 2 else "%H:%M"
        try:
            return datetime.strptime(text, form).time()
        except ValueError:
            pass
    problems.append(f"session_time {text!r} is not a time of day as HH:MM or HH:MM:SS (24-hour clock)")
    return None


def _parse_row(line: int, cells: dict[str, str]) -> tuple[_Row, list[str]]:
    problems: list[str] = []
    h2o = cells["water_restriction_number"]
    if h2o and not naming.is_water_restriction_number(h2o):
        problems.append(
            f"water_restriction_number {h2o!r} is not letters followed by digits (e.g. dl59 or SC026)"
        )
    elif len(h2o) > _SUBJECT_MAX:
        problems.append(f"water_restriction_number {h2o!r} is longer than {_SUBJECT_MAX} characters")
    subject_id = _whole_number(cells["subject_id"], "subject_id", "407513", problems)
    if not h2o and not cells["subject_id"]:
        problems.append("neither water_restriction_number nor subject_id is given")
    subject_given = not problems
    ident = cells["ident"]
    if not _IDENT_RE.fullmatch(ident):
        problems.append(
            f"ident {ident!r} may contain only letters and digits (empty for the first session of a day)"
        )
    elif len(ident) > _IDENT_MAX:
        problems.append(f"ident {ident!r} is longer than {_IDENT_MAX} characters")
    rig = cells["rig"]
    if len(rig) > _RIG_MAX:
        problems.append(f"rig {rig!r} is longer than {_RIG_MAX} characters")
    row = _Row(
        line=line,
        water_restriction_number=h2o,
        subject_id=subject_id,
        session_date=_parse_date(cells["session_date"], problems),
        ident=ident,
        session_number=_whole_number(cells["session_number"], "session_number", "3", problems),
        session_time=_parse_time(cells["session_time"], problems),
        rig=rig,
        subject_given=subject_given,
    )
    return row, problems


def _read_rows(text: str) -> tuple[list[_Row], list[Problem]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        names = _read_header(reader)
        rows, problems = [], []
        line = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                if len(cells) != len(names):
                    problems.append(
                        Problem(line, f"{len(cells)} values where the header has {len(names)} columns")
                    )
                else:
                    row, reasons = _parse_row(line, {n: c.strip() for n, c in zip(names, cells, strict=True)})
                    rows.append(row)
                    problems.extend(Problem(line, reason) for reason in reasons)
            line = reader.line_num + 1
    except csv.Error as error:
        raise ImportRefused([Problem(reader.line_num, f"The file is not valid CSV: {error}.")]) from error
    return rows, problems


def _existing_subjects(rows: list[_Row]) -> list[Subject]:
    keys = {row.water_restriction_number.lower() for row in rows if row.water_restriction_number}
    ids = {row.subject_id for row in rows if row.subject_id is not None}
    return list(
        Subject.objects.annotate(h2o_key=Lower("water_restriction_number")).filter(
            Q(h2o_key__in=keys) | Q(subject_id__in=ids)
        )
    )


class _SubjectResolver:
    """Finds or plans the subject of each line, and keeps names and ids consistent across the file."""

    def __init__(self, existing: list[Subject]):
        self.by_key: dict[str, _SubjectPlan] = {}
        self.key_by_id: dict[int, str] = {}
        for subject in existing:
            key = subject.water_restriction_number.lower()
            self.by_key[key] = _SubjectPlan(
                subject.water_restriction_number, subject.subject_id, subject, None
            )
            if subject.subject_id is not None:
                self.key_by_id[subject.subject_id] = key

    def resolve(self, row: _Row) -> tuple[str | None, str | None]:
        """(the subject's key, None), or (None, the reason the line names no consistent subject)."""
        h2o, subject_id = row.water_restriction_number, row.subject_id
        if not h2o:
            key = self.key_by_id.get(subject_id)
            if key is None:
                return None, (
                    f"subject_id {subject_id} is not in the catalog; "
                    "give its water_restriction_number to create the subject"
                )
            return key, None
        key = h2o.lower()
        plan = self.by_key.get(key)
        if subject_id is not None:
            holder = self.key_by_id.get(subject_id)
            if holder is not None and holder != key:
                other = self.by_key[holder]
                return None, (
                    f"subject_id {subject_id} is {other.water_restriction_number} {other.where()}, not {h2o}"
                )
            if plan is not None and plan.subject_id is not None and plan.subject_id != subject_id:
                return None, (
                    f"water_restriction_number {h2o} has subject_id {plan.subject_id} {plan.where()}, "
                    f"not {subject_id}"
                )
        if plan is None:
            self.by_key[key] = _SubjectPlan(h2o, subject_id, None, row.line)
        elif subject_id is not None and plan.subject_id is None:
            plan.subject_id = subject_id
        if subject_id is not None:
            self.key_by_id[subject_id] = key
        return key, None


def _check(rows: list[_Row], resolver: _SubjectResolver) -> tuple[dict, list[Problem]]:
    """Each good line's session key, and the problems of the lines that name no consistent session."""
    keys, problems, first_line = {}, [], {}
    for row in rows:
        if not row.subject_given:
            continue
        subject_key, reason = resolver.resolve(row)
        if reason is not None:
            problems.append(Problem(row.line, reason))
            continue
        if row.session_date is None:
            continue
        session_key = (subject_key, row.session_date, row.ident)
        if session_key in first_line:
            problems.append(
                Problem(
                    row.line,
                    f"duplicate of line {first_line[session_key]} (the same subject, session_date and ident)",
                )
            )
            continue
        first_line[session_key] = row.line
        keys[row.line] = session_key
    return keys, problems


def _apply(rows: list[_Row], session_keys: dict, resolver: _SubjectResolver) -> ImportResult:
    result = ImportResult()
    subjects: dict[str, Subject] = {}
    new_subjects = []
    for key, plan in resolver.by_key.items():
        if plan.existing is None:
            subject = Subject(
                water_restriction_number=plan.water_restriction_number, subject_id=plan.subject_id
            )
            new_subjects.append(subject)
        else:
            subject = plan.existing
            if subject.subject_id != plan.subject_id:
                subject.subject_id = plan.subject_id
                result.subjects_updated.append(subject)
        subjects[key] = subject
    result.subjects_created = Subject.objects.bulk_create(new_subjects)
    Subject.objects.bulk_update(result.subjects_updated, ["subject_id"])

    existing_sessions = {
        (session.subject_id, session.session_date, session.ident): session
        for session in Session.objects.filter(
            subject__in=[plan.existing for plan in resolver.by_key.values() if plan.existing is not None],
            session_date__in={row.session_date for row in rows},
        )
    }
    new_sessions = []
    for row in rows:
        subject_key, session_date, ident = session_keys[row.line]
        subject = subjects[subject_key]
        session = existing_sessions.get((subject.pk, session_date, ident))
        if session is None:
            new_sessions.append(
                Session(
                    subject=subject,
                    session_date=session_date,
                    ident=ident,
                    session_number=row.session_number,
                    session_time=row.session_time,
                    rig=row.rig,
                )
            )
            continue
        changed = False
        for name in ("session_number", "session_time", "rig"):
            value = getattr(row, name)
            if value not in (None, "") and getattr(session, name) != value:
                setattr(session, name, value)
                changed = True
        if changed:
            result.sessions_updated.append(session)
        else:
            result.sessions_unchanged += 1
    result.sessions_created = Session.objects.bulk_create(new_sessions)
    Session.objects.bulk_update(result.sessions_updated, ["session_number", "session_time", "rig"])
    return result


def import_sessions(fileobj) -> ImportResult:
    """Create or update the subjects and sessions listed in a CSV file (bytes or text).

    Raises ImportRefused, having written nothing, when any line is bad.
    """
    rows, problems = _read_rows(_read_text(fileobj))
    try:
        with transaction.atomic():
            resolver = _SubjectResolver(_existing_subjects(rows))
            session_keys, subject_problems = _check(rows, resolver)
            problems = sorted(problems + subject_problems, key=lambda problem: problem.line or 0)
            if problems:
                raise ImportRefused(problems)
            return _apply(rows, session_keys, resolver)
    except IntegrityError as error:
        # Only a concurrent change can get here: every line was checked against the catalog.
        raise ImportRefused(
            [Problem(None, f"The catalog changed while the file was imported ({error}); import it again.")]
        ) from error
