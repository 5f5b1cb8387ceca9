"""Table-driven tests of the lab's naming conventions (catalog.naming); no database."""

from datetime import date

import pytest

from catalog.naming import (
    DATASET_TYPES,
    RAW_EPHYS,
    RAW_VIDEO,
    SEED_FILE_TYPES,
    UNKNOWN_FILE_TYPE,
    FileTypeRule,
    InvalidSubpath,
    ParsedPath,
    Unmatched,
    is_valid_subpath,
    match_file_type,
    normalize_subpath,
    parse_session_folder,
    parse_subpath,
    probe_folder,
    session_folder,
    validate_root_path,
)

JUL31 = date(2019, 7, 31)
EPHYS_SESSION = "dl59/catgt_dl59_073119_g0"
PROBE0 = f"{EPHYS_SESSION}/dl59_073119_g0_imec0"


def case(id_, *values):
    return pytest.param(*values, id=id_)


# --- normalize_subpath / is_valid_subpath / validate_root_path -------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        case("already-normal", "dl59/20190731/video/a.avi", "dl59/20190731/video/a.avi"),
        case("single-name", "readme.txt", "readme.txt"),
        case("leading-slash", "/dl59/a.bin", "dl59/a.bin"),
        case("double-slashes", "dl59//catgt_dl59_073119_g0///a.bin", "dl59/catgt_dl59_073119_g0/a.bin"),
        case("dot-components", "./dl59/./a.bin", "dl59/a.bin"),
        case("trailing-slash", "dl59/20190731/", "dl59/20190731"),
        case("hidden-name-kept", "dl59/.DS_Store", "dl59/.DS_Store"),
        case("three-dots-is-a-name", "dl59/...", "dl59/..."),
        case("spaces-kept", "dl59/my notes.txt", "dl59/my notes.txt"),
        case("unicode-name", "dl59/séance.txt", "dl59/séance.txt"),
    ],
)
def test_normalize_subpath_accepts(raw, normalized):
    assert normalize_subpath(raw) == normalized
    assert is_valid_subpath(normalized)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        case("empty", "", "empty"),
        case("only-slash", "/", "names no file"),
        case("only-dot", ".", "names no file"),
        case("backslash", "dl59\\a.bin", "backslash"),
        case("windows-path", "C:\\data\\dl59", "backslash"),
        case("dotdot-start", "../etc/passwd", ".."),
        case("dotdot-middle", "dl59/../secret", ".."),
        case("dotdot-end", "dl59/..", ".."),
        case("nul", "dl59/a\x00.bin", "control character"),
        case("newline", "dl59/a\n.bin", "control character"),
        case("tab", "dl59/a\t.bin", "control character"),
        case("delete-char", "dl59/a\x7f.bin", "control character"),
    ],
)
def test_normalize_subpath_rejects(raw, words):
    with pytest.raises(InvalidSubpath, match=words) as raised:
        normalize_subpath(raw)
    assert isinstance(raised.value, ValueError)
    assert not is_valid_subpath(raw)


@pytest.mark.parametrize(
    ("raw", "valid"),
    [
        case("normal", "dl59/a.bin", True),
        case("leading-slash", "/dl59/a.bin", False),
        case("trailing-slash", "dl59/", False),
        case("double-slash", "dl59//a.bin", False),
        case("dot", "dl59/./a.bin", False),
        case("empty", "", False),
        case("dotdot", "dl59/../a.bin", False),
    ],
)
def test_is_valid_subpath(raw, valid):
    assert is_valid_subpath(raw) is valid


@pytest.mark.parametrize(
    ("raw", "root"),
    [
        case("ephys-root", "/ePhys", "/ePhys"),
        case("video-root", "/Videos", "/Videos"),
        case("collection-top", "/", "/"),
        case("trailing-slash", "/ePhys/", "/ePhys"),
        case("nested", "/archive/ePhys", "/archive/ePhys"),
        case("double-slashes", "//archive//ePhys//", "/archive/ePhys"),
        case("dot-component", "/./ePhys", "/ePhys"),
    ],
)
def test_validate_root_path_accepts(raw, root):
    assert validate_root_path(raw) == root


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        case("empty", "", "empty"),
        case("relative", "ePhys", "relative"),
        case("relative-dot", "./ePhys", "relative"),
        case("backslash", "\\ePhys", "backslash"),
        case("windows", "C:\\ePhys", "backslash"),
        case("dotdot", "/ePhys/../Videos", ".."),
        case("control-char", "/ePhys\x00", "control character"),
    ],
)
def test_validate_root_path_rejects(raw, words):
    with pytest.raises(InvalidSubpath, match=words):
        validate_root_path(raw)


# --- file types ----------------------------------------------------------------

# A realistic file name for every row of the seed table.
EXAMPLE_FILE_NAMES = {
    "ephys-raw-neuropixels-ap-bin": "dl59_073119_g0_t0.imec0.ap.bin",
    "ephys-raw-neuropixels-ap-meta": "dl59_073119_g0_t0.imec0.ap.meta",
    "ephys-raw-neuropixels-lf-bin": "dl59_073119_g0_t0.imec0.lf.bin",
    "ephys-raw-neuropixels-lf-meta": "dl59_073119_g0_t0.imec0.lf.meta",
    "ephys-raw-neuropixels-sy": "dl59_073119_g0_tcat.imec0.ap.SY_384_6_500.txt",
    "ephys-raw-matlab-misc": "dl59_073119_chanMap.mat",
    "ephys-raw-nidq": "dl59_073119_g0_t0.nidq.bin",
    "ephys-raw-ks2-amplitude-scaling": "amplitudes.npy",
    "ephys-raw-ks2-channel-map": "channel_map.npy",
    "ephys-raw-ks2-channel-positions": "channel_positions.npy",
    "ephys-raw-ks2-cluster-amplitudes": "cluster_Amplitude.tsv",
    "ephys-raw-ks2-cluster-contam": "cluster_ContamPct.tsv",
    "ephys-raw-ks2-cluster-grouping": "cluster_group.tsv",
    "ephys-raw-ks2-cluster-labeling": "cluster_KSLabel.tsv",
    "ephys-raw-ks2-cluster-snr": "cluster_snr.npy",
    "ephys-raw-ks2-cluster-table": "clus_Table.npy",
    "ephys-raw-ks2-mean-waveforms": "mean_waveforms.npy",
    "ephys-raw-ks2-cluster-metrics": "metrics.csv",
    "ephys-raw-ks2-overlap-matrix": "overlap_matrix.npy",
    "ephys-raw-ks2-overlap-summ-npy": "overlap_summary.npy",
    "ephys-raw-ks2-overlap-summ-csv": "overlap_summary.csv",
    "ephys-raw-ks2-parameters": "params.py",
    "ephys-raw-ks2-pc-features": "pc_features.npy",
    "ephys-raw-ks2-pc-features-ind": "pc_feature_ind.npy",
    "ephys-raw-ks2-results": "rez.mat",
    "ephys-raw-ks2-similar": "similar_templates.npy",
    "ephys-raw-ks2-spike-times": "spike_times.npy",
    "ephys-raw-ks2-ftemplate": "template_features.npy",
    "ephys-raw-ks2-ftemplate-ind": "template_feature_ind.npy",
    "ephys-raw-ks2-spike-template": "spike_templates.npy",
    "ephys-raw-ks2-template": "templates.npy",
    "ephys-raw-ks2-template-ind": "templates_ind.npy",
    "ephys-raw-ks2-whitening-mat": "whitening_mat.npy",
    "ephys-raw-ks2-whitening-mat-inv": "whitening_mat_inv.npy",
    "ephys-raw-ks2-spike-clusters": "spike_clusters.npy",
    "ephys-raw-ks2-cluster-groups": "cluster_groups.csv",
    "tracking-video-trial": "dl59_side_108-0000.avi",
    "tracking-video-map": "dl59_20190731_trial_map.txt",
}


def test_seed_table_is_the_original_table():
    names = [rule.name for rule in SEED_FILE_TYPES]
    assert len(names) == len(set(names)) == 38
    assert set(names) == set(EXAMPLE_FILE_NAMES)
    assert {rule.dataset_type for rule in SEED_FILE_TYPES} == set(DATASET_TYPES)
    assert all(rule.description for rule in SEED_FILE_TYPES)
    prefixes = {RAW_EPHYS: "ephys-raw-", RAW_VIDEO: "tracking-video-"}
    assert all(rule.name.startswith(prefixes[rule.dataset_type]) for rule in SEED_FILE_TYPES)


@pytest.mark.parametrize(
    ("rule", "filename"),
    [pytest.param(rule, EXAMPLE_FILE_NAMES[rule.name], id=rule.name) for rule in SEED_FILE_TYPES],
)
def test_every_seed_file_type_matches_a_realistic_name(rule, filename):
    assert match_file_type(rule.dataset_type, filename) == rule.name


@pytest.mark.parametrize(
    ("dataset_type", "filename", "file_type"),
    [
        case("rez-mat-is-ks2-results-not-matlab-misc", RAW_EPHYS, "rez.mat", "ephys-raw-ks2-results"),
        case("other-mat-is-matlab-misc", RAW_EPHYS, "rez2.mat", "ephys-raw-matlab-misc"),
        case("nidq-meta", RAW_EPHYS, "dl59_073119_g0_t0.nidq.meta", "ephys-raw-nidq"),
        case("nidq-extracted-events", RAW_EPHYS, "dl59_073119_g0_tcat.nidq.XA_0_0.txt", "ephys-raw-nidq"),
        case("case-sensitive-glob", RAW_EPHYS, "dl59_073119_g0_t0.imec0.AP.BIN", "ephys-raw-unknown"),
        case("ks2-name-case-sensitive", RAW_EPHYS, "Rez.mat", "ephys-raw-matlab-misc"),
        case("unknown-ephys", RAW_EPHYS, "notes.txt", "ephys-raw-unknown"),
        case("ephys-name-under-video", RAW_VIDEO, "rez.mat", "tracking-video-unknown"),
        case("video-name-under-ephys", RAW_EPHYS, "dl59_side_108-0000.avi", "ephys-raw-unknown"),
        case("trial-mp4", RAW_VIDEO, "dl59_bottom_12-0003.mp4", "tracking-video-trial"),
        case("unknown-video", RAW_VIDEO, "dl59_side.avi", "tracking-video-unknown"),
        case("matches-on-name-not-path", RAW_EPHYS, "imec0_ks2/rez.mat", "ephys-raw-ks2-results"),
    ],
)
def test_match_file_type(dataset_type, filename, file_type):
    assert match_file_type(dataset_type, filename) == file_type


def test_match_file_type_orders_custom_rules_by_name_not_position():
    rules = (
        FileTypeRule("ephys-raw-z-anything", RAW_EPHYS, "*"),
        FileTypeRule("ephys-raw-a-bin", RAW_EPHYS, "*.bin"),
        FileTypeRule("tracking-video-all", RAW_VIDEO, "*"),
    )
    assert match_file_type(RAW_EPHYS, "x.bin", rules) == "ephys-raw-a-bin"
    assert match_file_type(RAW_EPHYS, "x.txt", rules) == "ephys-raw-z-anything"
    assert match_file_type(RAW_EPHYS, "x.txt", ()) == UNKNOWN_FILE_TYPE[RAW_EPHYS]


def test_unknown_dataset_type_is_refused():
    with pytest.raises(ValueError, match="Unknown dataset type"):
        match_file_type("raw-imaging", "x.tif")
    with pytest.raises(ValueError, match="Unknown dataset type"):
        parse_subpath("raw-imaging", "dl59/20190731/x.tif")


# --- formatting session and probe folders ---------------------------------------


@pytest.mark.parametrize(
    ("dataset_type", "h2o", "session_date", "ident", "folder"),
    [
        case("ephys-first", RAW_EPHYS, "dl59", JUL31, "", "dl59/catgt_dl59_073119_g0"),
        case("ephys-numbered", RAW_EPHYS, "dl59", JUL31, "1", "dl59/catgt_dl59_073119_1_g0"),
        case("ephys-word", RAW_EPHYS, "SC026", JUL31, "surface", "SC026/catgt_SC026_073119_surface_g0"),
        case("ephys-new-years-eve", RAW_EPHYS, "tw5", date(2019, 12, 31), "", "tw5/catgt_tw5_123119_g0"),
        case("ephys-new-years-day", RAW_EPHYS, "tw5", date(2020, 1, 1), "", "tw5/catgt_tw5_010120_g0"),
        case("ephys-iso-week-trap", RAW_EPHYS, "tw5", date(2018, 12, 31), "", "tw5/catgt_tw5_123118_g0"),
        case("video-first", RAW_VIDEO, "dl59", JUL31, "", "dl59/20190731"),
        case("video-numbered", RAW_VIDEO, "dl59", JUL31, "2", "dl59/20190731_2"),
        case("video-word", RAW_VIDEO, "SC026", JUL31, "surface", "SC026/20190731_surface"),
        case("video-new-years-eve", RAW_VIDEO, "tw5", date(2019, 12, 31), "", "tw5/20191231"),
    ],
)
def test_session_folder(dataset_type, h2o, session_date, ident, folder):
    assert session_folder(dataset_type, h2o, session_date, ident) == folder


@pytest.mark.parametrize(
    ("args", "words"),
    [
        case("unknown-dataset-type", ("raw-imaging", "dl59", JUL31, ""), "Unknown dataset type"),
        case("h2o-with-underscore", (RAW_EPHYS, "dl_59", JUL31, ""), "water restriction number"),
        case("h2o-without-digits", (RAW_VIDEO, "dl", JUL31, ""), "water restriction number"),
        case("ident-with-underscore", (RAW_EPHYS, "dl59", JUL31, "a_b"), "letters and digits"),
        case("ident-with-slash", (RAW_VIDEO, "dl59", JUL31, "a/b"), "letters and digits"),
        case("year-beyond-two-digits", (RAW_EPHYS, "dl59", date(2070, 1, 1), ""), "two-digit year"),
    ],
)
def test_session_folder_refuses(args, words):
    with pytest.raises(ValueError, match=words):
        session_folder(*args)


@pytest.mark.parametrize(
    ("ident", "insertion", "folder"),
    [
        case("first-probe", "", 1, "dl59_073119_g0_imec0"),
        case("fourth-probe", "", 4, "dl59_073119_g0_imec3"),
        case("numbered-session", "1", 2, "dl59_073119_1_g0_imec1"),
        case("word-session", "surface", 3, "dl59_073119_surface_g0_imec2"),
    ],
)
def test_probe_folder(ident, insertion, folder):
    assert probe_folder("dl59", JUL31, ident, insertion) == folder


def test_probe_folder_refuses_insertion_zero():
    with pytest.raises(ValueError, match="count from 1"):
        probe_folder("dl59", JUL31, "", 0)


# --- parsing files that belong to a session -------------------------------------


def parsed(h2o, session_date, ident, probe, file_type, folder):
    return ParsedPath(
        water_restriction_number=h2o,
        session_date=session_date,
        ident=ident,
        probe_insertion=probe,
        file_type=file_type,
        session_folder=folder,
    )


AP_BIN = "ephys-raw-neuropixels-ap-bin"
TRIAL = "tracking-video-trial"


@pytest.mark.parametrize(
    ("subpath", "expected"),
    [
        case(
            "nidq-at-session-level",
            f"{EPHYS_SESSION}/dl59_073119_g0_t0.nidq.bin",
            parsed("dl59", JUL31, "", None, "ephys-raw-nidq", EPHYS_SESSION),
        ),
        case(
            "unknown-file-at-session-level",
            f"{EPHYS_SESSION}/notes.txt",
            parsed("dl59", JUL31, "", None, "ephys-raw-unknown", EPHYS_SESSION),
        ),
        case(
            "session-subfolder-not-a-probe",
            f"{EPHYS_SESSION}/behavior/events.csv",
            parsed("dl59", JUL31, "", None, "ephys-raw-unknown", EPHYS_SESSION),
        ),
        case(
            "ks2-folder-at-session-level-has-no-probe",
            f"{EPHYS_SESSION}/imec0_ks2/rez.mat",
            parsed("dl59", JUL31, "", None, "ephys-raw-ks2-results", EPHYS_SESSION),
        ),
        case(
            "catgt-probe-imec0",
            f"{PROBE0}/dl59_073119_g0_t0.imec0.ap.bin",
            parsed("dl59", JUL31, "", 1, AP_BIN, EPHYS_SESSION),
        ),
        case(
            "catgt-probe-imec1",
            f"{EPHYS_SESSION}/dl59_073119_g0_imec1/dl59_073119_g0_t0.imec1.ap.bin",
            parsed("dl59", JUL31, "", 2, AP_BIN, EPHYS_SESSION),
        ),
        case(
            "catgt-probe-imec2",
            f"{EPHYS_SESSION}/dl59_073119_g0_imec2/dl59_073119_g0_t0.imec2.ap.bin",
            parsed("dl59", JUL31, "", 3, AP_BIN, EPHYS_SESSION),
        ),
        case(
            "catgt-probe-imec3",
            f"{EPHYS_SESSION}/dl59_073119_g0_imec3/dl59_073119_g0_t0.imec3.ap.bin",
            parsed("dl59", JUL31, "", 4, AP_BIN, EPHYS_SESSION),
        ),
        case(
            "old-docs-probe-imec0",
            f"{EPHYS_SESSION}/dl59_073119_imec0/dl59_073119_g0_t0.imec0.ap.bin",
            parsed("dl59", JUL31, "", 1, AP_BIN, EPHYS_SESSION),
        ),
        case(
            "old-docs-probe-imec1",
            f"{EPHYS_SESSION}/dl59_073119_imec1/dl59_073119_g0_t0.imec1.lf.bin",
            parsed("dl59", JUL31, "", 2, "ephys-raw-neuropixels-lf-bin", EPHYS_SESSION),
        ),
        case(
            "old-docs-probe-imec2",
            f"{EPHYS_SESSION}/dl59_073119_imec2/dl59_073119_g0_t0.imec2.ap.meta",
            parsed("dl59", JUL31, "", 3, "ephys-raw-neuropixels-ap-meta", EPHYS_SESSION),
        ),
        case(
            "old-docs-probe-imec3",
            f"{EPHYS_SESSION}/dl59_073119_imec3/dl59_073119_g0_t0.imec3.lf.meta",
            parsed("dl59", JUL31, "", 4, "ephys-raw-neuropixels-lf-meta", EPHYS_SESSION),
        ),
        case(
            "ks2-rez-under-probe",
            f"{PROBE0}/imec0_ks2/rez.mat",
            parsed("dl59", JUL31, "", 1, "ephys-raw-ks2-results", EPHYS_SESSION),
        ),
        case(
            "ks2-spike-times-under-probe-3",
            f"{EPHYS_SESSION}/dl59_073119_g0_imec2/imec2_ks2/spike_times.npy",
            parsed("dl59", JUL31, "", 3, "ephys-raw-ks2-spike-times", EPHYS_SESSION),
        ),
        case(
            "ks2-nested-folder",
            f"{PROBE0}/imec0_ks2/phy_backup/cluster_group.tsv",
            parsed("dl59", JUL31, "", 1, "ephys-raw-ks2-cluster-grouping", EPHYS_SESSION),
        ),
        case(
            "other-folder-under-probe",
            f"{PROBE0}/figures/drift.png",
            parsed("dl59", JUL31, "", 1, "ephys-raw-unknown", EPHYS_SESSION),
        ),
        case(
            "sync-edges-in-probe",
            f"{PROBE0}/dl59_073119_g0_tcat.imec0.ap.SY_384_6_500.txt",
            parsed("dl59", JUL31, "", 1, "ephys-raw-neuropixels-sy", EPHYS_SESSION),
        ),
        case(
            "numbered-session",
            "dl59/catgt_dl59_073119_1_g0/dl59_073119_1_g0_imec0/dl59_073119_1_g0_t0.imec0.ap.bin",
            parsed("dl59", JUL31, "1", 1, AP_BIN, "dl59/catgt_dl59_073119_1_g0"),
        ),
        case(
            "numbered-session-old-docs-probe",
            "dl59/catgt_dl59_073119_2_g0/dl59_073119_2_imec1/x.imec1.ap.bin",
            parsed("dl59", JUL31, "2", 2, AP_BIN, "dl59/catgt_dl59_073119_2_g0"),
        ),
        case(
            "word-session",
            "SC026/catgt_SC026_073119_surface_g0/SC026_073119_surface_g0_imec0/imec0_ks2/params.py",
            parsed(
                "SC026",
                JUL31,
                "surface",
                1,
                "ephys-raw-ks2-parameters",
                "SC026/catgt_SC026_073119_surface_g0",
            ),
        ),
        case(
            "h2o-case-differs-keeps-parent-case",
            "SC026/catgt_sc026_073119_g0/sc026_073119_g0_imec0/x.imec0.ap.bin",
            parsed("SC026", JUL31, "", 1, AP_BIN, "SC026/catgt_sc026_073119_g0"),
        ),
        case(
            "new-years-eve",
            "tw5/catgt_tw5_123119_g0/tw5_123119_g0_t0.nidq.bin",
            parsed("tw5", date(2019, 12, 31), "", None, "ephys-raw-nidq", "tw5/catgt_tw5_123119_g0"),
        ),
        case(
            "new-years-day",
            "tw5/catgt_tw5_010120_g0/tw5_010120_g0_imec0/tw5_010120_g0_t0.imec0.ap.bin",
            parsed("tw5", date(2020, 1, 1), "", 1, AP_BIN, "tw5/catgt_tw5_010120_g0"),
        ),
        case(
            "nineties-two-digit-year",
            "tw5/catgt_tw5_010199_g0/x.nidq.bin",
            parsed("tw5", date(1999, 1, 1), "", None, "ephys-raw-nidq", "tw5/catgt_tw5_010199_g0"),
        ),
    ],
)
def test_parse_ephys_file(subpath, expected):
    assert parse_subpath(RAW_EPHYS, subpath) == expected


@pytest.mark.parametrize(
    ("subpath", "expected"),
    [
        case(
            "first-session-video",
            "dl59/20190731/video/dl59_side_108-0000.avi",
            parsed("dl59", JUL31, "", None, TRIAL, "dl59/20190731"),
        ),
        case(
            "first-session-trial-map",
            "dl59/20190731/video/dl59_20190731_trial_map.txt",
            parsed("dl59", JUL31, "", None, "tracking-video-map", "dl59/20190731"),
        ),
        case(
            "file-directly-in-session",
            "dl59/20190731/dl59_bottom_3-0000.mp4",
            parsed("dl59", JUL31, "", None, TRIAL, "dl59/20190731"),
        ),
        case(
            "unknown-video-file",
            "dl59/20190731/video/camera_settings.json",
            parsed("dl59", JUL31, "", None, "tracking-video-unknown", "dl59/20190731"),
        ),
        case(
            "numbered-session",
            "dl59/20190731_1/video/dl59_side_1-0000.avi",
            parsed("dl59", JUL31, "1", None, TRIAL, "dl59/20190731_1"),
        ),
        case(
            "word-session",
            "SC026/20190731_surface/video/SC026_side_2-0001.avi",
            parsed("SC026", JUL31, "surface", None, TRIAL, "SC026/20190731_surface"),
        ),
        case(
            "new-years-eve",
            "tw5/20191231/video/tw5_side_1-0000.avi",
            parsed("tw5", date(2019, 12, 31), "", None, TRIAL, "tw5/20191231"),
        ),
        case(
            "new-years-day",
            "tw5/20200101/video/tw5_side_1-0000.avi",
            parsed("tw5", date(2020, 1, 1), "", None, TRIAL, "tw5/20200101"),
        ),
        case(
            "imec-like-folder-means-nothing-for-video",
            "dl59/20190731/dl59_073119_g0_imec0/x.avi",
            parsed("dl59", JUL31, "", None, "tracking-video-unknown", "dl59/20190731"),
        ),
    ],
)
def test_parse_video_file(subpath, expected):
    assert parse_subpath(RAW_VIDEO, subpath) == expected


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset_type", "h2o", "session_date", "ident"),
    [
        case(
            f"{dataset_type}-{h2o}-{session_date.isoformat()}-{ident or 'first'}",
            dataset_type,
            h2o,
            session_date,
            ident,
        )
        for dataset_type in DATASET_TYPES
        for h2o, session_date, ident in [
            ("dl59", JUL31, ""),
            ("SC026", JUL31, "1"),
            ("tw5", date(2019, 12, 31), "surface"),
            ("tw5", date(2020, 1, 1), ""),
            ("tw5", date(2020, 2, 29), "2"),
            ("dl59", date(1999, 12, 31), ""),
            ("dl59", date(2068, 12, 31), ""),
        ]
    ],
)
def test_session_folder_round_trips(dataset_type, h2o, session_date, ident):
    folder = session_folder(dataset_type, h2o, session_date, ident)
    assert parse_session_folder(dataset_type, folder) == (h2o, session_date, ident)
    result = parse_subpath(dataset_type, f"{folder}/data.bin")
    assert isinstance(result, ParsedPath)
    assert (result.water_restriction_number, result.session_date, result.ident) == (h2o, session_date, ident)
    assert result.session_folder == folder
    assert result.probe_insertion is None


@pytest.mark.parametrize("insertion", [1, 2, 3, 4], ids=lambda n: f"insertion-{n}")
@pytest.mark.parametrize("ident", ["", "1", "surface"], ids=lambda i: f"ident-{i or 'first'}")
def test_probe_folder_round_trips(ident, insertion):
    folder = session_folder(RAW_EPHYS, "dl59", date(2019, 12, 31), ident)
    probe = probe_folder("dl59", date(2019, 12, 31), ident, insertion)
    result = parse_subpath(RAW_EPHYS, f"{folder}/{probe}/imec{insertion - 1}_ks2/spike_times.npy")
    assert isinstance(result, ParsedPath)
    assert result.probe_insertion == insertion
    assert result.ident == ident
    assert result.session_folder == folder


# --- paths that fit no convention ------------------------------------------------


@pytest.mark.parametrize(
    ("dataset_type", "subpath", "words"),
    [
        case("top-level-file", RAW_EPHYS, "readme.txt", "top of the location"),
        case("top-level-file-video", RAW_VIDEO, "readme.txt", "top of the location"),
        case("subject-root-file", RAW_EPHYS, "dl59/notes.txt", "subject's top level belongs to no session"),
        case(
            "subject-root-file-video",
            RAW_VIDEO,
            "dl59/notes.txt",
            "subject's top level belongs to no session",
        ),
        case(
            "session-folder-as-file",
            RAW_EPHYS,
            "dl59/catgt_dl59_073119_g0",
            "session folder with no file below it",
        ),
        case(
            "session-folder-as-file-video", RAW_VIDEO, "dl59/20190731", "session folder with no file below it"
        ),
        case(
            "h2o-disagrees-with-parent",
            RAW_EPHYS,
            "dl59/catgt_dl60_073119_g0/x.nidq.bin",
            "names subject 'dl60' but lies in the folder of subject 'dl59'",
        ),
        case(
            "impossible-mmddyy", RAW_EPHYS, "dl59/catgt_dl59_023019_g0/x.nidq.bin", "not a real calendar date"
        ),
        case("month-13", RAW_EPHYS, "dl59/catgt_dl59_133119_g0/x.nidq.bin", "not a real calendar date"),
        case("impossible-yyyymmdd", RAW_VIDEO, "dl59/20190231/video/x.avi", "not a real calendar date"),
        case("not-leap-year", RAW_VIDEO, "dl59/20190229/video/x.avi", "not a real calendar date"),
        case(
            "eight-digit-date-in-ephys",
            RAW_EPHYS,
            "dl59/catgt_dl59_20190731_g0/x.bin",
            "not a date in MMDDYY",
        ),
        case("dotdot", RAW_EPHYS, "dl59/../catgt_dl59_073119_g0/x.bin", "'..'"),
        case("backslash", RAW_EPHYS, "dl59\\catgt_dl59_073119_g0\\x.bin", "backslash"),
        case("absolute", RAW_VIDEO, "/dl59/20190731/video/x.avi", "absolute"),
        case("not-normalized", RAW_VIDEO, "dl59//20190731/video/x.avi", "not in normal form"),
        case("empty-path", RAW_VIDEO, "", "empty"),
        case("control-character", RAW_VIDEO, "dl59/20190731/video/x\x00.avi", "control character"),
        case("hidden-file", RAW_VIDEO, "dl59/20190731/video/.DS_Store", "'.DS_Store' is hidden"),
        case("hidden-folder", RAW_EPHYS, f"{PROBE0}/imec0_ks2/.phy/spikes.npy", "'.phy' is hidden"),
        case("hidden-subject", RAW_EPHYS, ".trash/catgt_dl59_073119_g0/x.bin", "'.trash' is hidden"),
        case("hidden-top-file", RAW_EPHYS, ".globus_sync", "hidden"),
        case("unknown-ephys-folder", RAW_EPHYS, "dl59/random_folder/x.bin", "not a raw-ephys session folder"),
        case("unknown-video-folder", RAW_VIDEO, "dl59/random_folder/x.avi", "not a raw-video session folder"),
        case("video-folder-in-ephys", RAW_EPHYS, "dl59/20190731/x.bin", "not a raw-ephys session folder"),
        case(
            "ephys-folder-in-video",
            RAW_VIDEO,
            "dl59/catgt_dl59_073119_g0/x.avi",
            "not a raw-video session folder",
        ),
        case("empty-ident", RAW_EPHYS, "dl59/catgt_dl59_073119__g0/x.nidq.bin", "ident is empty"),
        case("empty-ident-video", RAW_VIDEO, "dl59/20190731_/video/x.avi", "ident is empty"),
        case("ident-with-underscore", RAW_EPHYS, "dl59/catgt_dl59_073119_a_b_g0/x.bin", "letters and digits"),
        case("ident-with-dash", RAW_VIDEO, "dl59/20190731_a-b/video/x.avi", "letters and digits"),
        case("other-gate", RAW_EPHYS, "dl59/catgt_dl59_073119_g1/x.bin", "does not end in '_g0'"),
        case("no-date", RAW_EPHYS, "dl59/catgt_dl59_g0/x.bin", "has no date"),
        case(
            "h2o-with-underscore",
            RAW_EPHYS,
            "dl_59/catgt_dl_59_073119_g0/x.bin",
            "not a water restriction number",
        ),
        case("h2o-without-digits", RAW_VIDEO, "video/20190731/x.avi", "not a water restriction number"),
        case("h2o-digits-first", RAW_VIDEO, "59dl/20190731/x.avi", "not a water restriction number"),
        case("bad-h2o-file-at-its-root", RAW_VIDEO, "misc/notes.txt", "not a water restriction number"),
        case(
            "probe-h2o-disagrees",
            RAW_EPHYS,
            f"{EPHYS_SESSION}/dl60_073119_g0_imec0/x.imec0.ap.bin",
            "does not belong to session folder",
        ),
        case(
            "probe-date-disagrees",
            RAW_EPHYS,
            f"{EPHYS_SESSION}/dl59_073019_g0_imec0/x.imec0.ap.bin",
            "does not belong to session folder",
        ),
        case(
            "probe-ident-disagrees",
            RAW_EPHYS,
            "dl59/catgt_dl59_073119_1_g0/dl59_073119_2_g0_imec0/x.imec0.ap.bin",
            "does not belong to session folder",
        ),
        case(
            "probe-ident-missing",
            RAW_EPHYS,
            "dl59/catgt_dl59_073119_1_g0/dl59_073119_g0_imec0/x.imec0.ap.bin",
            "does not belong to session folder",
        ),
        case(
            "probe-has-ident-session-has-none",
            RAW_EPHYS,
            f"{EPHYS_SESSION}/dl59_073119_surface_g0_imec0/x.imec0.ap.bin",
            "does not belong to session folder",
        ),
        case(
            "probe-number-leading-zero",
            RAW_EPHYS,
            f"{EPHYS_SESSION}/dl59_073119_g0_imec01/x.ap.bin",
            "leading zero",
        ),
        case("probe-folder-as-file", RAW_EPHYS, PROBE0, "is a probe folder, not a file"),
        case(
            "ks2-disagrees-with-probe",
            RAW_EPHYS,
            f"{PROBE0}/imec1_ks2/rez.mat",
            "lies in the folder of probe imec0",
        ),
        case("ks2-folder-as-file", RAW_EPHYS, f"{PROBE0}/imec0_ks2", "Kilosort output folder, not a file"),
    ],
)
def test_parse_subpath_unmatched(dataset_type, subpath, words):
    result = parse_subpath(dataset_type, subpath)
    assert isinstance(result, Unmatched)
    assert result.subpath == subpath
    assert words in result.reason
    assert result.reason[0].isupper() or result.reason[0] in "'\""


# --- session folders, as discovery sees them ---------------------------------------


@pytest.mark.parametrize(
    ("dataset_type", "folder", "expected"),
    [
        case("ephys-first", RAW_EPHYS, "dl59/catgt_dl59_073119_g0", ("dl59", JUL31, "")),
        case("ephys-word", RAW_EPHYS, "SC026/catgt_SC026_073119_surface_g0", ("SC026", JUL31, "surface")),
        case("ephys-case-differs", RAW_EPHYS, "SC026/catgt_sc026_073119_g0", ("SC026", JUL31, "")),
        case("video-numbered", RAW_VIDEO, "dl59/20190731_1", ("dl59", JUL31, "1")),
    ],
)
def test_parse_session_folder(dataset_type, folder, expected):
    assert parse_session_folder(dataset_type, folder) == expected


@pytest.mark.parametrize(
    ("dataset_type", "folder", "words"),
    [
        case("subject-only", RAW_EPHYS, "dl59", "directly inside a subject's folder"),
        case(
            "too-deep",
            RAW_EPHYS,
            f"{EPHYS_SESSION}/dl59_073119_g0_imec0",
            "directly inside a subject's folder",
        ),
        case("unknown-folder", RAW_EPHYS, "dl59/random_folder", "not a raw-ephys session folder"),
        case("h2o-disagrees", RAW_EPHYS, "dl59/catgt_dl60_073119_g0", "lies in the folder of subject 'dl59'"),
        case("impossible-date", RAW_VIDEO, "dl59/20190231", "not a real calendar date"),
        case("empty-ident", RAW_EPHYS, "dl59/catgt_dl59_073119__g0", "ident is empty"),
        case("hidden", RAW_VIDEO, "dl59/.20190731", "hidden"),
        case("absolute", RAW_VIDEO, "/dl59/20190731", "absolute"),
        case("trailing-slash", RAW_VIDEO, "dl59/20190731/", "not in normal form"),
    ],
)
def test_parse_session_folder_unmatched(dataset_type, folder, words):
    result = parse_session_folder(dataset_type, folder)
    assert isinstance(result, Unmatched)
    assert result.subpath == folder
    assert words in result.reason
