"""Forms of the transfer pages: job filters, retrieval selections, discovery runs."""

from django import forms

from catalog import queries as catalog_queries
from catalog.models import StorageLocation
from transfers import queries


class JobFilterForm(forms.Form):
    state = forms.ChoiceField(required=False, label="State")
    user = forms.ChoiceField(required=False, label="Requested by")
    subject = forms.CharField(
        required=False,
        label="Subject",
        widget=forms.TextInput(attrs={"placeholder": "h2o or subject id", "size": 14}),
    )

    def __init__(self, *args, requesters=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["state"].choices = [("", "Any")] + [
            (key, label) for key, (label, _) in queries.STATE_FILTERS.items()
        ]
        self._requesters = {str(user.pk): user for user in requesters}
        self.fields["user"].choices = [("", "Anyone")] + [(str(user.pk), user.get_username()) for user in requesters]

    def clean_user(self):
        return self._requesters.get(self.cleaned_data["user"])

    def clean_subject(self):
        key = self.cleaned_data["subject"].strip()
        if not key:
            return None
        subject = catalog_queries.find_subject(key)
        if subject is None:
            raise forms.ValidationError(f"No subject {key}.")
        return subject


class IdsField(forms.Field):
    """Any number of row ids, as a form's checkboxes send them."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        try:
            return [int(item) for item in value or ()]
        except (TypeError, ValueError):
            raise forms.ValidationError("The selection is not a list of ids.") from None


class RetrievalForm(forms.Form):
    """A selection from the search page and where to put it."""

    session = IdsField(required=False)
    file = IdsField(required=False)
    all_matching = forms.BooleanField(required=False)
    destination = forms.ModelChoiceField(
        queryset=StorageLocation.objects.filter(writable=True),
        to_field_name="alias",
        error_messages={
            "required": "Choose where the files should go.",
            "invalid_choice": "That location does not accept retrieved files; choose a writable one.",
        },
    )

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("session") or cleaned.get("file") or cleaned.get("all_matching")):
            raise forms.ValidationError("Select at least one session or file to retrieve.")
        return cleaned


class StartRunForm(forms.Form):
    location = forms.ModelChoiceField(
        queryset=StorageLocation.objects.order_by("role", "alias"),
        empty_label=None,
        label="Location",
    )
