"""Forms of the catalog's admin pages."""

from django import forms

from catalog.imports import COLUMNS
from catalog.models import DatasetType, StorageLocation

_DATASET_TYPES = ", ".join(f"{value} ({label})" for value, label in DatasetType.choices)


class StorageLocationForm(forms.ModelForm):
    """A storage location; the model's clean() and constraints give the remaining errors in words."""

    class Meta:
        model = StorageLocation
        fields = [
            "alias",
            "role",
            "dataset_type",
            "backend",
            "collection_id",
            "root_path",
            "local_path",
            "writable",
            "description",
        ]
        error_messages = {
            "collection_id": {
                "invalid": (
                    "Enter the collection UUID as 32 hexadecimal digits in five groups, "
                    "e.g. 5b875fda-4185-11e8-bb52-0ac6873fc732 (the Globus web app shows it)."
                )
            },
            "dataset_type": {
                "invalid_choice": f"Unknown dataset type %(value)s; choose one of {_DATASET_TYPES}."
            },
            "role": {"invalid_choice": "Unknown role %(value)s; choose archive or local."},
            "backend": {"invalid_choice": "Unknown backend %(value)s; choose globus or filesystem."},
        }


class SessionImportForm(forms.Form):
    csv_file = forms.FileField(
        label="CSV file",
        help_text=(
            f"Header line with exactly these columns, in any order: {', '.join(COLUMNS)}. "
            "Dates as YYYY-MM-DD, times as HH:MM. A file with any bad line is refused as a whole."
        ),
    )
