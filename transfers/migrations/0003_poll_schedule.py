"""The django-q2 schedule that polls active transfer jobs (see ``ensure_schedules``)."""

from django.db import migrations


def create_poll_schedule(apps, schema_editor):
    from transfers.jobs import ensure_poll_schedule

    ensure_poll_schedule(apps.get_model("django_q", "Schedule"))


def remove_poll_schedule(apps, schema_editor):
    from transfers.jobs import POLL_SCHEDULE_NAME

    apps.get_model("django_q", "Schedule").objects.filter(name=POLL_SCHEDULE_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("transfers", "0002_job_retry"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_poll_schedule, remove_poll_schedule)]
