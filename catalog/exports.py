"""Export of the catalog as one record per raw file, for scripts.

The record's fields and their order are a stable interface (see FIELDS); the
`export_catalog` command documents them. Records are streamed: the files come
from one query read in chunks, joined to their present copies and those
copies' locations in the same query, so the number of queries does not grow
with the number of files.
"""

import csv
import io
import json
from itertools import groupby

from django.db.models import FilteredRelation, Q
from django.db.models.functions import Lower

from catalog.models import LocationRole, RawFile, ReplicaState

FIELDS = (
    "subject_id",
    "water_restriction_number",
    "session_date",
    "ident",
    "session_number",
    "dataset_type",
    "subpath",
    "file_type",
    "probe",
    "size",
    "checksum",
    "locations",
    "archived",
)
FORMATS = ("jsonl", "csv")
CHUNK_SIZE = 2000

_COLUMNS = (
    "pk",
    "session__subject__subject_id",
    "session__subject__water_restriction_number",
    "session__session_date",
    "session__ident",
    "session__session_number",
    "dataset_type",
    "subpath",
    "file_type__name",
    "probe_insertion",
    "size",
    "checksum",
    "present_copy__location__alias",
    "present_copy__location__role",
)


def iter_records(subject=None, chunk_size=CHUNK_SIZE):
    """One dict per raw file (of `subject`, or of all subjects), in subject, date, ident and path order.

    `locations` lists the aliases of the locations holding a present copy;
    `archived` is true when one of them is an archive.
    """
    files = RawFile.objects.annotate(
        present_copy=FilteredRelation("replicas", condition=Q(replicas__state=ReplicaState.PRESENT))
    )
    if subject is not None:
        files = files.filter(session__subject=subject)
    rows = files.order_by(
        Lower("session__subject__water_restriction_number"),
        "session__subject_id",
        "session__session_date",
        "session__ident",
        "dataset_type",
        "subpath",
        "pk",
    ).values_list(*_COLUMNS)
    # A file with several present copies comes as consecutive rows, one per copy.
    for _, copies in groupby(rows.iterator(chunk_size=chunk_size), key=lambda row: row[0]):
        copies = list(copies)
        first = copies[0]
        held_by = sorted((row[-2], row[-1]) for row in copies if row[-2] is not None)
        yield {
            "subject_id": first[1],
            "water_restriction_number": first[2],
            "session_date": first[3].isoformat(),
            "ident": first[4],
            "session_number": first[5],
            "dataset_type": first[6],
            "subpath": first[7],
            "file_type": first[8],
            "probe": first[9],
            "size": first[10],
            "checksum": first[11],
            "locations": [alias for alias, _ in held_by],
            "archived": any(role == LocationRole.ARCHIVE for _, role in held_by),
        }


def jsonl_lines(records):
    """Each record as one line of JSON (null for an unknown value, a list of location aliases)."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False) + "\n"


def _csv_value(name, value):
    if value is None:
        return ""
    if name == "locations":
        return ";".join(value)
    if name == "archived":
        return "true" if value else "false"
    return value


def csv_lines(records):
    """A header line, then each record as a CSV line (empty for an unknown value, aliases joined with ';')."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for record in records:
        writer.writerow([_csv_value(name, record[name]) for name in FIELDS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def export_lines(records, output_format):
    if output_format == "jsonl":
        return jsonl_lines(records)
    if output_format == "csv":
        return csv_lines(records)
    raise ValueError(f"Unknown export format {output_format!r}; expected one of {', '.join(FORMATS)}.")
