"""Loading storage locations from a file, idempotently.

Two kinds of file are read:

- the portal's own format: a JSON list of objects with the keys alias, role,
  dataset_type, backend, collection_id, path (the root path inside the
  collection), local_path and writable. alias, role, dataset_type and backend
  are required; a key left out keeps the stored value (or the default, for a
  new location). Unknown keys are refused.
- the original DataJoint pipeline's ``dj_local_conf.json`` (see
  ``read_dj_local_conf`` for how its settings map onto locations).

Every location is validated as the admin validates it (``full_clean``), and a
file is applied in one transaction: with any problem, nothing is changed. A
key that holds a token is never imported nor shown; the reader warns about it.
"""

import json
import uuid
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from catalog import naming
from catalog.models import Backend, DatasetType, LocationRole, StorageLocation

# Portal-format key -> model field.
PORTAL_KEYS = {
    "alias": "alias",
    "role": "role",
    "dataset_type": "dataset_type",
    "backend": "backend",
    "collection_id": "collection_id",
    "path": "root_path",
    "local_path": "local_path",
    "writable": "writable",
}
REQUIRED_KEYS = ("alias", "role", "dataset_type", "backend")
_CHOICES = {"role": LocationRole, "dataset_type": DatasetType, "backend": Backend}
# The fields a load compares and reports, in this order.
COMPARED_FIELDS = ("role", "dataset_type", "backend", "collection_id", "root_path", "local_path", "writable")

LOCAL_ENDPOINT_KEYS = (
    "globus.local_endpoint",
    "globus.local_endpoint_subdir",
    "globus.local_endpoint_local_path",
)
STORAGE_LOCATIONS_KEY = "globus.storage_locations"
LOCAL_ENDPOINTS_KEY = "globus.local_endpoints"
LOCAL_ENDPOINT_ENTRY_KEYS = ("endpoint", "endpoint_subdir", "endpoint_path")
# Words that tell a dataset type in an original alias or path, compared in lower case.
_DATASET_HINTS = {naming.RAW_EPHYS: ("ephys",), naming.RAW_VIDEO: ("video", "tracking")}


@dataclass
class LocationSpec:
    """What a file says about one location: `values` holds only the fields it states."""

    alias: str
    origin: str
    values: dict
    # Fields set only when the location is created (the file is silent about them).
    create_values: dict = field(default_factory=dict)


@dataclass
class LocationFile:
    specs: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


@dataclass(frozen=True)
class LocationChange:
    alias: str
    action: str  # created, updated or unchanged
    changes: tuple = ()  # (field, old value, new value) for an update; (field, value, value) on creation

    def __str__(self):
        if self.action == "updated":
            details = ", ".join(f"{name} {_show(old)} -> {_show(new)}" for name, old, new in self.changes)
            return f"updated {self.alias}: {details}"
        if self.action == "created":
            details = ", ".join(f"{name}={_show(new)}" for name, _, new in self.changes)
            return f"created {self.alias}: {details}"
        return f"unchanged {self.alias}"


@dataclass
class LoadResult:
    changes: list
    warnings: list


class LocationsRefused(Exception):
    """Nothing was loaded; `problems` says why, `warnings` what else the reader noticed."""

    def __init__(self, problems, warnings=()):
        self.problems = list(problems)
        self.warnings = list(warnings)
        super().__init__("\n".join(self.problems))


def _show(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return repr(str(value))


def _json_kind(value):
    """What kind of JSON value this is, without showing it (it may hold a secret)."""
    kinds = (
        (bool, "a boolean"),
        (str, "a string"),
        (int, "a number"),
        (float, "a number"),
        (list, "a list"),
        (dict, "an object"),
    )
    return next((kind for python_type, kind in kinds if isinstance(value, python_type)), "null")


def _token_keys(value, prefix=""):
    """Dotted paths of the keys whose name mentions a token, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}{key}"
            if "token" in str(key).lower():
                yield path
            else:
                yield from _token_keys(item, f"{path} > ")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _token_keys(item, f"{prefix}[{index}] > ")


def _token_warnings(data):
    return [
        f"The file holds a token under {path!r}; it was not imported and is not shown. A token belongs "
        "to the application that obtained it; the portal gets its own when people log in with Globus."
        for path in _token_keys(data)
    ]


def read_portal_format(data) -> LocationFile:
    """Locations from the portal's own format: a JSON list of objects."""
    result = LocationFile()
    allowed = ", ".join(PORTAL_KEYS)
    for number, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            result.problems.append(f"entry {number}: is not an object with the keys {allowed}")
            continue
        alias = entry.get("alias")
        origin = f"entry {number} ({alias})" if isinstance(alias, str) and alias else f"entry {number}"
        problems = []
        unknown = [key for key in entry if key not in PORTAL_KEYS]
        if unknown:
            problems.append(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed keys: {allowed}")
        missing = [key for key in REQUIRED_KEYS if entry.get(key) in (None, "")]
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        for key, value in entry.items():
            if key not in PORTAL_KEYS or key in missing or (key == "collection_id" and value is None):
                continue
            if key == "writable":
                if not isinstance(value, bool):
                    problems.append(f"writable must be true or false, not {_json_kind(value)}")
            elif not isinstance(value, str):
                problems.append(f"{key} must be a string, not {_json_kind(value)}")
            elif key in _CHOICES and value not in _CHOICES[key].values:
                problems.append(f"{key} {value!r} is not one of {', '.join(_CHOICES[key].values)}")
        if problems:
            result.problems.extend(f"{origin}: {problem}" for problem in problems)
            continue
        values = {PORTAL_KEYS[key]: value for key, value in entry.items() if key != "alias"}
        result.specs.append(LocationSpec(alias=alias, origin=origin, values=values))
    return result


def _infer_dataset_type(original_alias, path):
    """The dataset type an original alias or path names, or the reason none can be told."""
    found = {
        dataset_type
        for dataset_type, words in _DATASET_HINTS.items()
        for text in (original_alias, path)
        if any(word in text.lower() for word in words)
    }
    if len(found) == 1:
        return found.pop(), None
    if found:
        return None, (
            f"alias {original_alias!r} and path {path!r} name both raw-ephys and raw-video; "
            "describe this location in the portal's format instead"
        )
    return None, (
        f"cannot tell whether alias {original_alias!r} with path {path!r} holds raw-ephys or raw-video "
        "(expected 'ephys' or 'video' in the alias or the path, e.g. raw-ephys with /ePhys or raw-video "
        "with /Videos); describe this location in the portal's format instead"
    )


def _portal_alias(original_alias, suffix):
    alias = slugify(original_alias) or "location"
    return alias if alias.endswith(suffix) else f"{alias}-{suffix}"


def _collection_path(path):
    """A path inside a Globus collection as stored in the portal: absolute.

    The original pipeline wrote '<endpoint>:/<subdir>/...', so a relative subdir
    was taken from the top of the collection.
    """
    if path is None or path == "":
        return "/"
    return path if path.startswith("/") else f"/{path}"


def _collection_id(value, what):
    """The UUID string of a collection, or the reason `value` is not one."""
    if not isinstance(value, str):
        return None, f"{what} must be a collection UUID string"
    try:
        uuid.UUID(value)
    except ValueError:
        return None, (
            f"{what} {value!r} is not a collection UUID; look the collection up in the Globus web app "
            "and use its UUID (legacy 'user#endpoint' names are no longer accepted by Globus)"
        )
    return value, None


def _read_storage_locations(entries, result):
    if not isinstance(entries, list):
        result.problems.append(f"{STORAGE_LOCATIONS_KEY} must be a list of [alias, endpoint UUID, path]")
        return
    for index, entry in enumerate(entries):
        origin = f"{STORAGE_LOCATIONS_KEY}[{index}]"
        if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(item, str) for item in entry)):
            result.problems.append(f"{origin}: expected [alias, endpoint UUID, path] as three strings")
            continue
        original_alias, endpoint, path = entry
        origin = f"{origin} ({original_alias})"
        dataset_type, reason = _infer_dataset_type(original_alias, path)
        collection_id, uuid_reason = _collection_id(endpoint, "the endpoint")
        reasons = [r for r in (reason, uuid_reason) if r]
        if reasons:
            result.problems.extend(f"{origin}: {r}" for r in reasons)
            continue
        result.specs.append(
            LocationSpec(
                alias=_portal_alias(original_alias, "archive"),
                origin=origin,
                values={
                    "role": LocationRole.ARCHIVE,
                    "dataset_type": dataset_type,
                    "backend": Backend.GLOBUS,
                    "collection_id": collection_id,
                    "root_path": _collection_path(path),
                },
                create_values={"writable": False},
            )
        )


def _local_spec(alias, origin, dataset_type, endpoint, subdir, local_path):
    collection_id, reason = _collection_id(endpoint, "the endpoint")
    if reason:
        return None, [f"{origin}: {reason}"]
    problems = []
    for name, value in (("the subdir", subdir), ("the local path", local_path)):
        if value is not None and not isinstance(value, str):
            problems.append(f"{origin}: {name} must be a string")
    if problems:
        return None, problems
    values = {
        "role": LocationRole.LOCAL,
        "dataset_type": dataset_type,
        "backend": Backend.GLOBUS,
        "collection_id": collection_id,
        "root_path": _collection_path(subdir),
        "local_path": local_path or "",
    }
    return LocationSpec(alias=alias, origin=origin, values=values, create_values={"writable": False}), []


def _read_local_endpoints(endpoints, result):
    covered = set()
    if not isinstance(endpoints, dict):
        result.problems.append(
            f"{LOCAL_ENDPOINTS_KEY} must map aliases to {{endpoint, endpoint_subdir, endpoint_path}}"
        )
        return covered
    for original_alias, entry in endpoints.items():
        origin = f"{LOCAL_ENDPOINTS_KEY} > {original_alias}"
        if not isinstance(entry, dict) or "endpoint" not in entry:
            result.problems.append(
                f"{origin}: expected an object with endpoint, endpoint_subdir and endpoint_path"
            )
            continue
        ignored = [
            key for key in entry if key not in LOCAL_ENDPOINT_ENTRY_KEYS and "token" not in key.lower()
        ]
        if ignored:
            result.warnings.append(f"{origin}: ignored key(s) {', '.join(map(repr, ignored))}")
        subdir = entry.get("endpoint_subdir")
        dataset_type, reason = _infer_dataset_type(original_alias, subdir if isinstance(subdir, str) else "")
        if reason:
            result.problems.append(f"{origin}: {reason}")
            continue
        spec, problems = _local_spec(
            _portal_alias(original_alias, "local"),
            origin,
            dataset_type,
            entry["endpoint"],
            subdir,
            entry.get("endpoint_path"),
        )
        result.problems.extend(problems)
        if spec is not None:
            result.specs.append(spec)
            covered.add(dataset_type)
    return covered


def _read_single_local_endpoint(conf, covered, result):
    endpoint, subdir, local_path = (conf.get(key) for key in LOCAL_ENDPOINT_KEYS)
    if endpoint is None:
        given = [
            key
            for key, value in zip(LOCAL_ENDPOINT_KEYS, (endpoint, subdir, local_path), strict=True)
            if value
        ]
        if given:
            result.problems.append(f"{', '.join(given)} given without globus.local_endpoint")
        return
    uncovered = [dataset_type for dataset_type in naming.DATASET_TYPES if dataset_type not in covered]
    if not uncovered:
        result.warnings.append(
            f"globus.local_endpoint was not imported: {LOCAL_ENDPOINTS_KEY} already names a local endpoint "
            "for every dataset type"
        )
    for dataset_type in uncovered:
        spec, problems = _local_spec(
            f"{dataset_type}-local", "globus.local_endpoint", dataset_type, endpoint, subdir, local_path
        )
        result.problems.extend(problems)
        if spec is not None:
            result.specs.append(spec)


def read_dj_local_conf(conf) -> LocationFile:
    """Locations from the original pipeline's dj_local_conf.json.

    - each ``custom`` > ``globus.storage_locations`` entry ``[alias, endpoint, path]``
      is a Globus archive location ``<alias>-archive`` on collection ``endpoint``
      with root ``path``; its dataset type comes from the alias or path
      ('ephys' gives raw-ephys; 'video' or 'tracking' gives raw-video).
    - each ``custom`` > ``globus.local_endpoints`` entry ``alias: {endpoint,
      endpoint_subdir, endpoint_path}`` is a Globus local location
      ``<alias>-local`` (dataset type from the alias as above) with root
      ``endpoint_subdir`` and local path ``endpoint_path``.
    - the top-level ``globus.local_endpoint``, ``globus.local_endpoint_subdir``
      and ``globus.local_endpoint_local_path`` describe the machine's one local
      endpoint for all raw data: it becomes ``raw-ephys-local`` and
      ``raw-video-local`` for the dataset types the map above leaves out.

    A relative path is taken from the top of the collection, as the original
    pipeline did. New locations are not writable; a reload leaves the writable
    flag as an admin set it. Each key is also looked for in the other place
    (``custom`` or top level), as versions of the pipeline differed.
    """
    result = LocationFile()
    custom = conf.get("custom") or {}
    if not isinstance(custom, dict):
        result.problems.append("'custom' must be an object")
        custom = {}

    def setting(key, primary, secondary):
        return primary[key] if key in primary else secondary.get(key)

    storage = setting(STORAGE_LOCATIONS_KEY, custom, conf)
    endpoints = setting(LOCAL_ENDPOINTS_KEY, custom, conf)
    single = {key: setting(key, conf, custom) for key in LOCAL_ENDPOINT_KEYS}
    if storage is None and endpoints is None and all(value is None for value in single.values()):
        result.problems.append(
            "The file names no storage locations: expected the portal's format (a JSON list of locations) "
            f"or a dj_local_conf.json with {STORAGE_LOCATIONS_KEY}, {LOCAL_ENDPOINTS_KEY} "
            "or globus.local_endpoint"
        )
        return result
    if storage is not None:
        _read_storage_locations(storage, result)
    covered = _read_local_endpoints(endpoints, result) if endpoints is not None else set()
    _read_single_local_endpoint(single, covered, result)
    return result


def read_locations(text: str) -> LocationFile:
    """Parse a locations file in either format; problems and warnings are collected, not raised."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        # The message names the position only, never the content.
        return LocationFile(problems=[f"The file is not valid JSON: {error}"])
    warnings = _token_warnings(data)
    if isinstance(data, list):
        result = read_portal_format(data)
    elif isinstance(data, dict):
        result = read_dj_local_conf(data)
    else:
        result = LocationFile(
            problems=["The file must hold a JSON list of locations or a dj_local_conf.json object"]
        )
    result.warnings = warnings + result.warnings
    return result


def _validation_messages(error: ValidationError):
    if hasattr(error, "error_dict"):
        for name, errors in error.message_dict.items():
            for message in errors:
                yield message if name == "__all__" else f"{name}: {message}"
    else:
        yield from error.messages


def apply_locations(specs) -> list[LocationChange]:
    """Create or update each location in one transaction; raises LocationsRefused having changed nothing."""
    problems, changes, first_origin = [], [], {}
    with transaction.atomic():
        existing = {
            location.alias: location
            for location in StorageLocation.objects.select_for_update().filter(
                alias__in=[spec.alias for spec in specs]
            )
        }
        for spec in specs:
            if spec.alias in first_origin:
                problems.append(
                    f"{spec.origin}: alias {spec.alias!r} is also given by {first_origin[spec.alias]}"
                )
                continue
            first_origin[spec.alias] = spec.origin
            location = existing.get(spec.alias)
            created = location is None
            if created:
                location = StorageLocation(alias=spec.alias, **spec.create_values)
            before = {name: getattr(location, name) for name in COMPARED_FIELDS}
            for name, value in spec.values.items():
                setattr(location, name, value)
            try:
                location.full_clean()
            except ValidationError as error:
                problems.extend(f"{spec.origin}: {message}" for message in _validation_messages(error))
                continue
            after = {name: getattr(location, name) for name in COMPARED_FIELDS}
            if created:
                changes.append(
                    LocationChange(spec.alias, "created", tuple((n, None, after[n]) for n in after))
                )
            else:
                changed = tuple((n, before[n], after[n]) for n in COMPARED_FIELDS if before[n] != after[n])
                changes.append(LocationChange(spec.alias, "updated" if changed else "unchanged", changed))
                if not changed:
                    continue
            try:
                with transaction.atomic():
                    location.save()
            except IntegrityError as error:
                problems.append(f"{spec.origin}: the database refused it ({error})")
        if problems:
            raise LocationsRefused(problems)
    return changes


def load_locations(text: str) -> LoadResult:
    """Read a locations file and apply it; raises LocationsRefused, with the warnings, on any problem."""
    parsed = read_locations(text)
    if parsed.problems:
        raise LocationsRefused(parsed.problems, parsed.warnings)
    if not parsed.specs:
        raise LocationsRefused(["The file lists no locations."], parsed.warnings)
    try:
        changes = apply_locations(parsed.specs)
    except LocationsRefused as refused:
        raise LocationsRefused(refused.problems, parsed.warnings) from refused
    return LoadResult(changes=changes, warnings=parsed.warnings)
