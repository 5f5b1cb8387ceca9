"""The lab's naming conventions for raw data, as pure functions.

Formats and parses the subpaths of sessions, probes and raw files relative to a
storage location's root, and tells a file's type from its name. Nothing here
touches the database or any storage: discovery and scanning hand in plain
strings and get back either a ParsedPath or an Unmatched with a reason a person
can read. A path that fits no convention is never guessed into a session.
"""

import fnmatch
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

RAW_EPHYS = "raw-ephys"
RAW_VIDEO = "raw-video"
DATASET_TYPES = (RAW_EPHYS, RAW_VIDEO)


@dataclass(frozen=True)
class FileTypeRule:
    """One row of the FileType table: files of `dataset_type` whose name matches `glob`."""

    name: str
    dataset_type: str
    glob: str
    description: str = ""


def _ephys(suffix: str, glob: str, description: str) -> FileTypeRule:
    return FileTypeRule(f"ephys-raw-{suffix}", RAW_EPHYS, glob, description)


def _ks2(suffix: str, glob: str, description: str) -> FileTypeRule:
    return _ephys(f"ks2-{suffix}", glob, description)


def _video(suffix: str, glob: str, description: str) -> FileTypeRule:
    return FileTypeRule(f"tracking-video-{suffix}", RAW_VIDEO, glob, description)


SEED_FILE_TYPES: tuple[FileTypeRule, ...] = (
    _ephys("neuropixels-ap-bin", "*.ap.bin", "Neuropixels action-potential band data"),
    _ephys("neuropixels-ap-meta", "*.ap.meta", "Neuropixels action-potential band metadata"),
    _ephys("neuropixels-lf-bin", "*.lf.bin", "Neuropixels local-field band data"),
    _ephys("neuropixels-lf-meta", "*.lf.meta", "Neuropixels local-field band metadata"),
    _ephys("neuropixels-sy", "*.imec*.SY*.txt", "Neuropixels sync-channel edges extracted by CatGT"),
    _ephys("matlab-misc", "*.mat", "Other MATLAB file"),
    _ephys("nidq", "*.nidq.*", "NI-DAQ auxiliary channels (data, metadata, extracted events)"),
    _ks2("amplitude-scaling", "amplitudes.npy", "Kilosort2 amplitude scaling of each spike"),
    _ks2("channel-map", "channel_map.npy", "Kilosort2 channel map"),
    _ks2("channel-positions", "channel_positions.npy", "Kilosort2 channel positions on the probe"),
    _ks2("cluster-amplitudes", "cluster_Amplitude.tsv", "Kilosort2 cluster amplitudes"),
    _ks2("cluster-contam", "cluster_ContamPct.tsv", "Kilosort2 cluster contamination percentages"),
    _ks2("cluster-grouping", "cluster_group.tsv", "Cluster groups set during curation"),
    _ks2("cluster-labeling", "cluster_KSLabel.tsv", "Kilosort2 cluster labels"),
    _ks2("cluster-snr", "cluster_snr.npy", "Cluster signal-to-noise ratios"),
    _ks2("cluster-table", "clus_Table.npy", "Cluster table"),
    _ks2("mean-waveforms", "mean_waveforms.npy", "Mean waveform of each cluster"),
    _ks2("cluster-metrics", "metrics.csv", "Cluster quality metrics"),
    _ks2("overlap-matrix", "overlap_matrix.npy", "Cluster overlap matrix"),
    _ks2("overlap-summ-npy", "overlap_summary.npy", "Cluster overlap summary (NumPy)"),
    _ks2("overlap-summ-csv", "overlap_summary.csv", "Cluster overlap summary (CSV)"),
    _ks2("parameters", "params.*py", "Kilosort2 parameters"),
    _ks2("pc-features", "pc_features.npy", "Principal-component features of spikes"),
    _ks2("pc-features-ind", "pc_feature_ind.npy", "Channel indices of the principal-component features"),
    _ks2("results", "rez.mat", "Kilosort2 results structure"),
    _ks2("similar", "similar_templates.npy", "Template similarity matrix"),
    _ks2("spike-times", "spike_times.npy", "Spike times in samples"),
    _ks2("ftemplate", "template_features.npy", "Template features of spikes"),
    _ks2("ftemplate-ind", "template_feature_ind.npy", "Template indices of the template features"),
    _ks2("spike-template", "spike_templates.npy", "Template of each spike"),
    _ks2("template", "templates.npy", "Spike templates"),
    _ks2("template-ind", "templates_ind.npy", "Channel indices of the templates"),
    _ks2("whitening-mat", "whitening_mat.npy", "Whitening matrix"),
    _ks2("whitening-mat-inv", "whitening_mat_inv.npy", "Inverse whitening matrix"),
    _ks2("spike-clusters", "spike_clusters.npy", "Cluster of each spike"),
    _ks2("cluster-groups", "cluster_groups.csv", "Cluster groups (CSV)"),
    _video("trial", "*_*_[0-9]*-*.[am][vp][i4]", "Tracking video of one trial"),
    _video("map", "*_????????_*.txt", "Map of trials to tracking videos"),
)

UNKNOWN_FILE_TYPE = {RAW_EPHYS: "ephys-raw-unknown", RAW_VIDEO: "tracking-video-unknown"}

# Water restriction numbers are letters then digits: dl59, SC026, tw5.
_H2O_FORM = "(letters then digits, e.g. dl59)"
_WATER_RESTRICTION_RE = re.compile(r"[A-Za-z]+[0-9]+", re.ASCII)
_IDENT_RE = re.compile(r"[A-Za-z0-9]+", re.ASCII)
_MMDDYY_RE = re.compile(r"[0-9]{6}", re.ASCII)
_YYYYMMDD_RE = re.compile(r"[0-9]{8}", re.ASCII)
_PROBE_FOLDER_RE = re.compile(r"(?P<stem>.*)_imec(?P<index>[0-9]+)", re.ASCII)
_KS2_FOLDER_RE = re.compile(r"imec(?P<index>[0-9]+)_ks2", re.ASCII)
_PROBE_INDEX_RE = re.compile(r"0|[1-9][0-9]*", re.ASCII)

# What a two-digit %y year can name, so that formatting and parsing round-trip.
_TWO_DIGIT_YEARS = range(1969, 2069)


class InvalidSubpath(ValueError):
    """A path that cannot name a file inside a storage location."""


def _check_characters(path: str) -> None:
    if "\\" in path:
        raise InvalidSubpath(f"{path!r} contains a backslash; use '/' to separate folders.")
    for char in path:
        if unicodedata.category(char) == "Cc":
            raise InvalidSubpath(f"{path!r} contains a control character ({char!r}).")


def _components(path: str) -> list[str]:
    """The path's components without empty and '.' ones; refuses '..'."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidSubpath(f"{path!r} contains '..'; paths may not climb out of their folder.")
    return parts


def normalize_subpath(subpath: str) -> str:
    """Return `subpath` as a relative POSIX path with '/' separators and no empty or '.' parts."""
    if not subpath:
        raise InvalidSubpath("The path is empty.")
    _check_characters(subpath)
    parts = _components(subpath)
    if not parts:
        raise InvalidSubpath(f"{subpath!r} names no file or folder.")
    return "/".join(parts)


def is_valid_subpath(subpath: str) -> bool:
    """True if `subpath` is already in the normalized form stored for raw files."""
    try:
        return normalize_subpath(subpath) == subpath
    except InvalidSubpath:
        return False


def validate_root_path(path: str) -> str:
    """Return a location's root path as an absolute POSIX path without a trailing '/'."""
    if not path:
        raise InvalidSubpath("The root path is empty; use '/' for the top of the collection.")
    _check_characters(path)
    if not path.startswith("/"):
        raise InvalidSubpath(f"{path!r} is relative; a root path starts with '/', e.g. '/ePhys'.")
    return "/" + "/".join(_components(path))


def is_water_restriction_number(name: str) -> bool:
    """True if `name` has the form of a water restriction number (letters then digits)."""
    return _WATER_RESTRICTION_RE.fullmatch(name) is not None


def _check_dataset_type(dataset_type: str) -> None:
    if dataset_type not in DATASET_TYPES:
        expected = ", ".join(DATASET_TYPES)
        raise ValueError(f"Unknown dataset type {dataset_type!r}; expected one of {expected}.")


def _rules_for(dataset_type: str, rules) -> list:
    _check_dataset_type(dataset_type)
    return sorted((rule for rule in rules if rule.dataset_type == dataset_type), key=lambda rule: rule.name)


def match_file_type(dataset_type: str, filename: str, rules=SEED_FILE_TYPES) -> str:
    """Name of the first rule, in name order, whose glob matches the file name; else the unknown type."""
    name = filename.rsplit("/", 1)[-1]
    for rule in _rules_for(dataset_type, rules):
        if fnmatch.fnmatchcase(name, rule.glob):
            return rule.name
    return UNKNOWN_FILE_TYPE[dataset_type]


def _check_subject_and_ident(water_restriction_number: str, ident: str) -> None:
    if not is_water_restriction_number(water_restriction_number):
        raise ValueError(f"{water_restriction_number!r} is not a water restriction number {_H2O_FORM}.")
    if ident and not _IDENT_RE.fullmatch(ident):
        raise ValueError(f"Session ident {ident!r} may contain only letters and digits.")


def _mmddyy(session_date: date) -> str:
    if session_date.year not in _TWO_DIGIT_YEARS:
        raise ValueError(
            f"{session_date.isoformat()} cannot be written with a two-digit year "
            f"({_TWO_DIGIT_YEARS[0]}-{_TWO_DIGIT_YEARS[-1]})."
        )
    return f"{session_date.month:02d}{session_date.day:02d}{session_date.year % 100:02d}"


def _yyyymmdd(session_date: date) -> str:
    return f"{session_date.year:04d}{session_date.month:02d}{session_date.day:02d}"


def _ephys_stem(water_restriction_number: str, session_date: date, ident: str) -> str:
    stem = f"{water_restriction_number}_{_mmddyy(session_date)}"
    return f"{stem}_{ident}" if ident else stem


def session_folder(
    dataset_type: str, water_restriction_number: str, session_date: date, ident: str = ""
) -> str:
    """Subpath of a session's dataset folder relative to the location root."""
    _check_dataset_type(dataset_type)
    _check_subject_and_ident(water_restriction_number, ident)
    if dataset_type == RAW_EPHYS:
        folder = f"catgt_{_ephys_stem(water_restriction_number, session_date, ident)}_g0"
    else:
        folder = _yyyymmdd(session_date)
        if ident:
            folder = f"{folder}_{ident}"
    return f"{water_restriction_number}/{folder}"


def probe_folder(water_restriction_number: str, session_date: date, ident: str, insertion: int) -> str:
    """Name of a probe insertion's folder inside an ephys session folder, as CatGT writes it."""
    _check_subject_and_ident(water_restriction_number, ident)
    if insertion < 1:
        raise ValueError(f"Probe insertion {insertion} is not a probe; insertions count from 1.")
    return f"{_ephys_stem(water_restriction_number, session_date, ident)}_g0_imec{insertion - 1}"


@dataclass(frozen=True)
class ParsedPath:
    """Where a raw file belongs: subject, session, probe (None at session level) and file type.

    `session_folder` is the session's folder as found on storage, so it keeps the
    case of the path that was parsed.
    """

    water_restriction_number: str
    session_date: date
    ident: str
    probe_insertion: int | None
    file_type: str
    session_folder: str


@dataclass(frozen=True)
class Unmatched:
    """A path that fits no naming convention, and why."""

    subpath: str
    reason: str


def _parse_date(text: str, form: str, pattern: re.Pattern, strptime_format: str) -> date | str:
    """The date `text` names, or the reason it names none."""
    if not pattern.fullmatch(text):
        return f"{text!r} is not a date in {form} form."
    try:
        return datetime.strptime(text, strptime_format).date()
    except ValueError:
        return f"{text!r} is not a real calendar date ({form})."


def _parse_ident(parts: list[str]) -> str | None:
    """The ident after the date ('' when absent), or None when it is not letters and digits."""
    if not parts:
        return ""
    ident = "_".join(parts)
    return ident if _IDENT_RE.fullmatch(ident) else None


def _ident_reason(parts: list[str]) -> str:
    ident = "_".join(parts)
    if not ident:
        return (
            "the session ident is empty (two underscores in a row); "
            "leave it out for the first session of a day."
        )
    return f"session ident {ident!r} may contain only letters and digits."


def _parse_ephys_folder(subject: str, folder: str) -> tuple[str, date, str] | str:
    expected = f"expected catgt_{subject}_<MMDDYY>_g0 or catgt_{subject}_<MMDDYY>_<ident>_g0"
    if not folder.startswith("catgt_"):
        return f"Folder {folder!r} under subject {subject!r} is not a raw-ephys session folder ({expected})."
    if not folder.endswith("_g0"):
        return f"Session folder {folder!r} does not end in '_g0' ({expected})."
    parts = folder[len("catgt_") : -len("_g0")].split("_")
    if parts[0].lower() != subject.lower():
        return (
            f"Session folder {folder!r} names subject {parts[0]!r} "
            f"but lies in the folder of subject {subject!r}."
        )
    if len(parts) < 2:
        return f"Session folder {folder!r} has no date ({expected})."
    session_date = _parse_date(parts[1], "MMDDYY", _MMDDYY_RE, "%m%d%y")
    if isinstance(session_date, str):
        return f"Session folder {folder!r}: {session_date}"
    ident = _parse_ident(parts[2:])
    if ident is None:
        return f"Session folder {folder!r}: {_ident_reason(parts[2:])}"
    return subject, session_date, ident


def _parse_video_folder(subject: str, folder: str) -> tuple[str, date, str] | str:
    parts = folder.split("_")
    if not _YYYYMMDD_RE.fullmatch(parts[0]):
        return (
            f"Folder {folder!r} under subject {subject!r} is not a raw-video session folder "
            "(expected <YYYYMMDD> or <YYYYMMDD>_<ident>)."
        )
    session_date = _parse_date(parts[0], "YYYYMMDD", _YYYYMMDD_RE, "%Y%m%d")
    if isinstance(session_date, str):
        return f"Session folder {folder!r}: {session_date}"
    ident = _parse_ident(parts[1:])
    if ident is None:
        return f"Session folder {folder!r}: {_ident_reason(parts[1:])}"
    return subject, session_date, ident


def _parse_session_parts(dataset_type: str, subject: str, folder: str) -> tuple[str, date, str] | str:
    if not is_water_restriction_number(subject):
        return f"Top-level folder {subject!r} is not a water restriction number {_H2O_FORM}."
    if dataset_type == RAW_EPHYS:
        return _parse_ephys_folder(subject, folder)
    return _parse_video_folder(subject, folder)


def _path_problem(subpath: str) -> str | None:
    """Why `subpath` cannot be a stored raw-file path, or None if it can."""
    if subpath.startswith("/"):
        return "The path is absolute; paths are relative to the location root."
    try:
        normalized = normalize_subpath(subpath)
    except InvalidSubpath as error:
        return str(error)
    if normalized != subpath:
        return f"The path is not in normal form; it would be stored as {normalized!r}."
    hidden = next((part for part in subpath.split("/") if part.startswith(".")), None)
    if hidden is not None:
        return f"{hidden!r} is hidden; hidden files and folders are not raw data."
    return None


def parse_session_folder(dataset_type: str, folder_subpath: str) -> tuple[str, date, str] | Unmatched:
    """(water restriction number, date, ident) of a session folder '<h2o>/<folder>', or why it is none."""
    _check_dataset_type(dataset_type)
    problem = _path_problem(folder_subpath)
    if problem is not None:
        return Unmatched(folder_subpath, problem)
    parts = folder_subpath.split("/")
    if len(parts) != 2:
        return Unmatched(
            folder_subpath, "A session folder lies directly inside a subject's folder: '<h2o>/<folder>'."
        )
    session = _parse_session_parts(dataset_type, parts[0], parts[1])
    if isinstance(session, str):
        return Unmatched(folder_subpath, session)
    return session


def _parse_ephys_probe(
    session: tuple[str, date, str], session_subpath: str, below: list[str]
) -> int | None | str:
    """Probe insertion of a file `below` a session folder (None at session level), or why there is none."""
    probe = _PROBE_FOLDER_RE.fullmatch(below[0])
    if probe is None:
        return None
    if len(below) == 1:
        return f"{below[0]!r} is a probe folder, not a file."
    if not _PROBE_INDEX_RE.fullmatch(probe["index"]):
        return f"Probe folder {below[0]!r} writes its probe number with a leading zero."
    subject, session_date, ident = session
    stem = _ephys_stem(subject, session_date, ident)
    # Only the water restriction number may differ in case; date and ident are compared as written.
    probe_subject, _, probe_rest = probe["stem"].partition("_")
    session_rest = stem.partition("_")[2]
    if probe_subject.lower() != subject.lower() or probe_rest not in (f"{session_rest}_g0", session_rest):
        return (
            f"Probe folder {below[0]!r} does not belong to session folder {session_subpath!r} "
            f"(expected {stem}_g0_imec<N> or {stem}_imec<N>)."
        )
    index = int(probe["index"])
    kilosort = _KS2_FOLDER_RE.fullmatch(below[1])
    if kilosort is not None:
        if len(below) == 2:
            return f"{below[1]!r} is a Kilosort output folder, not a file."
        if kilosort["index"] != probe["index"]:
            return f"Kilosort folder {below[1]!r} lies in the folder of probe imec{index}."
    return index + 1


def parse_subpath(dataset_type: str, subpath: str, rules=SEED_FILE_TYPES) -> ParsedPath | Unmatched:
    """Where the raw file at `subpath` (relative to the location root) belongs, or why it belongs nowhere."""
    _check_dataset_type(dataset_type)
    problem = _path_problem(subpath)
    if problem is not None:
        return Unmatched(subpath, problem)
    parts = subpath.split("/")
    if len(parts) == 1:
        return Unmatched(subpath, "The file at the top of the location belongs to no subject.")
    session = _parse_session_parts(dataset_type, parts[0], parts[1])
    if len(parts) == 2:
        if isinstance(session, tuple):
            return Unmatched(subpath, "This is a session folder with no file below it, not a file.")
        if is_water_restriction_number(parts[0]):
            return Unmatched(subpath, "The file at the subject's top level belongs to no session.")
    if isinstance(session, str):
        return Unmatched(subpath, session)
    session_subpath = f"{parts[0]}/{parts[1]}"
    probe_insertion = None
    if dataset_type == RAW_EPHYS:
        probe_insertion = _parse_ephys_probe(session, session_subpath, parts[2:])
        if isinstance(probe_insertion, str):
            return Unmatched(subpath, probe_insertion)
    subject, session_date, ident = session
    return ParsedPath(
        water_restriction_number=subject,
        session_date=session_date,
        ident=ident,
        probe_insertion=probe_insertion,
        file_type=match_file_type(dataset_type, parts[-1], rules),
        session_folder=session_subpath,
    )
