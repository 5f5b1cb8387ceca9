"""A covering index of raw files by session, for the dashboard's totals.

The subjects page sums the files, bytes and archived copies of a page of
subjects (about 50,000 files in a catalog of a million). With the session, id
and size in one index PostgreSQL reads only the index, in a nested loop from
the subjects' sessions, instead of scanning the whole file table: 70 ms
instead of 180 ms on the benchmark catalog (bench/pages.py).

The index is written in SQL because Django's model indexes cannot say
"covering" on every database; it is not part of the model state, so it never
shows up in makemigrations.
"""

from django.db import migrations

INDEX = "rawfile_session_size_cover_idx"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON catalog_rawfile (session_id) INCLUDE (id, size)"
        )
    else:
        # SQLite keeps the row id in every index: (session_id, size) covers the same query.
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON catalog_rawfile (session_id, size)")


def drop_index(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0003_discovery_runs"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
