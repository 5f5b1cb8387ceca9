"""Forms of the catalog: the admin's location and import forms, and the search page."""

from django import forms

from catalog import queries
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
            "dataset_type": {"invalid_choice": f"Unknown dataset type %(value)s; choose one of {_DATASET_TYPES}."},
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


class SearchForm(forms.Form):
    subjects = forms.CharField(
        required=False,
        label="Subjects",
        help_text="Water restriction numbers or subject ids, separated by spaces or commas.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. dl59, SC026 407513", "size": 28}),
    )
    date_from = forms.DateField(
        required=False,
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )
    date_to = forms.DateField(
        required=False,
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )
    dataset_type = forms.ChoiceField(
        required=False,
        label="Dataset type",
        choices=[("", "Any")] + list(DatasetType.choices),
        error_messages={"invalid_choice": "“%(value)s” is not a dataset type; choose one from the list."},
    )
    file_type = forms.ChoiceField(
        required=False,
        label="File type",
        error_messages={"invalid_choice": "“%(value)s” is not a known file type; choose one from the list."},
    )

    def __init__(self, *args, file_types=(), **kwargs):
        super().__init__(*args, **kwargs)
        self._file_types = {file_type.name: file_type for file_type in file_types}
        labels = dict(DatasetType.choices)
        groups = {}
        for file_type in file_types:
            groups.setdefault(labels.get(file_type.dataset_type, file_type.dataset_type), []).append(
                (file_type.name, file_type.name)
            )
        self.fields["file_type"].choices = [("", "Any"), *groups.items()]

    def clean_file_type(self):
        name = self.cleaned_data["file_type"]
        return self._file_types[name] if name else None

    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", "The end date is before the start date.")
        file_type, dataset_type = cleaned.get("file_type"), cleaned.get("dataset_type")
        if file_type and dataset_type and file_type.dataset_type != dataset_type:
            self.add_error("file_type", f"{file_type.name} files are not {dataset_type} files.")
        return cleaned

    def file_filter(self):
        """The FileFilter of this valid form, and the subject keys that name no subject."""
        data = self.cleaned_data
        keys = queries.split_subject_keys(data["subjects"])
        subjects, unknown = queries.subjects_for_keys(keys)
        file_filter = queries.FileFilter(
            subjects=subjects,
            date_from=data["date_from"],
            date_to=data["date_to"],
            dataset_type=data["dataset_type"],
            file_type=data["file_type"],
            matches_nothing=bool(keys and not subjects),
        )
        return file_filter, unknown

    @property
    def has_criteria(self):
        return self.is_bound and any(self.data.get(name) for name in self.fields)
