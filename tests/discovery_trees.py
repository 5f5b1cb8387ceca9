"""Realistic raw-data trees for discovery and registry tests, written as small real files.

Each tree lists the files a walk must register (with the file type and probe
the catalog must give them) and the paths it must report unmatched, with the
category the run records. Folders that cannot hold sessions hold files too:
a pruned walk never lists them, so none of those files may show up anywhere.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from catalog.models import UnmatchedCategory as Category


@dataclass(frozen=True)
class Expected:
    subpath: str
    file_type: str
    probe: int | None
    size: int


@dataclass
class Tree:
    root: Path
    files: dict[str, Expected] = field(default_factory=dict)
    unmatched: dict[str, str] = field(default_factory=dict)  # subpath -> category
    never_listed: set[str] = field(default_factory=set)  # files inside pruned folders
    unmatched_folders: set[str] = field(default_factory=set)

    @property
    def files_seen(self):
        """Files a pruned walk lists: the registered ones and the unmatched ones outside pruned folders."""
        return len(self.files) + len(self.unmatched.keys() - self.unmatched_folders)

    @property
    def sessions(self):
        return {tuple(subpath.split("/")[:2]) for subpath in self.files}

    @property
    def folders(self):
        """Every folder a pruned walk lists, the root ('') included."""
        listed = {""}
        for subpath in self.files:
            parts = subpath.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                listed.add("/".join(parts[:depth]))
        return listed


def _write(root: Path, subpath: str, size: int) -> None:
    path = root / subpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes((index * 7 + len(subpath)) % 251 for index in range(size)))


def _file(tree: Tree, subpath: str, file_type: str, probe: int | None = None, size: int | None = None):
    size = size if size is not None else 10 + len(subpath) % 40
    _write(tree.root, subpath, size)
    tree.files[subpath] = Expected(subpath, file_type, probe, size)


def _unmatched(tree: Tree, subpath: str, category: str, *, folder_files=()) -> None:
    if folder_files:
        tree.unmatched_folders.add(subpath)
        for name in folder_files:
            _write(tree.root, f"{subpath}/{name}", 5)
            tree.never_listed.add(f"{subpath}/{name}")
    else:
        _write(tree.root, subpath, 5)
    tree.unmatched[subpath] = category


def _probe(tree, session, stem, index, *, ks2=()):
    folder = f"{session}/{stem}_imec{index}"
    base = f"{folder}/{stem}_tcat.imec{index}"
    for suffix, file_type in (
        ("ap.bin", "ephys-raw-neuropixels-ap-bin"),
        ("ap.meta", "ephys-raw-neuropixels-ap-meta"),
        ("lf.bin", "ephys-raw-neuropixels-lf-bin"),
        ("lf.meta", "ephys-raw-neuropixels-lf-meta"),
    ):
        _file(tree, f"{base}.{suffix}", file_type, index + 1)
    for name, file_type in ks2:
        _file(tree, f"{folder}/imec{index}_ks2/{name}", file_type, index + 1)


KILOSORT = (
    ("amplitudes.npy", "ephys-raw-ks2-amplitude-scaling"),
    ("channel_map.npy", "ephys-raw-ks2-channel-map"),
    ("cluster_KSLabel.tsv", "ephys-raw-ks2-cluster-labeling"),
    ("params.py", "ephys-raw-ks2-parameters"),
    ("rez.mat", "ephys-raw-ks2-results"),
    ("spike_clusters.npy", "ephys-raw-ks2-spike-clusters"),
    ("spike_times.npy", "ephys-raw-ks2-spike-times"),
)


def ephys_tree(root) -> Tree:
    """Three subjects, multi-session days with numeric and word idents, several probes, Kilosort
    output, NI-DAQ files, junk, hidden files and folders that fit no convention."""
    tree = Tree(Path(root))
    tree.root.mkdir(parents=True, exist_ok=True)
    # dl59: two sessions on 31 July 2019 (the second with ident 1), a "surface" session on 1 August.
    first = "dl59/catgt_dl59_073119_g0"
    _file(tree, f"{first}/dl59_073119_g0_tcat.nidq.bin", "ephys-raw-nidq", size=64)
    _file(tree, f"{first}/dl59_073119_g0_tcat.nidq.meta", "ephys-raw-nidq")
    _file(tree, f"{first}/dl59_073119_g0_tcat.nidq.XD_0_1_0.txt", "ephys-raw-nidq")
    _file(tree, f"{first}/behavior.mat", "ephys-raw-matlab-misc")
    _file(tree, f"{first}/notes.txt", "ephys-raw-unknown")
    _probe(tree, first, "dl59_073119_g0", 0, ks2=KILOSORT)
    _file(
        tree,
        f"{first}/dl59_073119_g0_imec0/dl59_073119_g0_tcat.imec0.SY_384_6_500.txt",
        "ephys-raw-neuropixels-sy",
        1,
    )
    _probe(tree, first, "dl59_073119_g0", 1, ks2=KILOSORT[:3])
    _unmatched(tree, f"{first}/.DS_Store", Category.HIDDEN)
    _unmatched(tree, f"{first}/dl59_073119_g0_imec1/.nfs0001", Category.HIDDEN)
    second = "dl59/catgt_dl59_073119_1_g0"
    _file(tree, f"{second}/dl59_073119_1_g0_tcat.nidq.bin", "ephys-raw-nidq")
    _probe(tree, second, "dl59_073119_1_g0", 0)
    surface = "dl59/catgt_dl59_080119_surface_g0"
    _probe(tree, surface, "dl59_080119_surface", 2)  # the old docs' probe folder form, probe 3
    _unmatched(tree, "dl59/readme.txt", Category.OUTSIDE_SESSION)
    _unmatched(tree, "dl59/catgt_dl59_023019_g0", Category.OUTSIDE_SESSION, folder_files=["a.ap.bin"])
    _unmatched(tree, "dl59/old_runs", Category.OUTSIDE_SESSION, folder_files=["x.bin", "y/z.bin"])
    # SC026: a probe folder of another session and a Kilosort folder of another probe.
    sc = "SC026/catgt_SC026_080219_g0"
    _probe(tree, sc, "SC026_080219_g0", 0, ks2=KILOSORT[3:])
    _unmatched(tree, f"{sc}/SC026_080319_g0_imec1", Category.IN_SESSION, folder_files=["b.ap.bin"])
    _unmatched(
        tree, f"{sc}/SC026_080219_g0_imec0/imec1_ks2", Category.IN_SESSION, folder_files=["spike_times.npy"]
    )
    # tw5: one session, one probe.
    _probe(tree, "tw5/catgt_tw5_123119_g0", "tw5_123119_g0", 0)
    # Junk at the top.
    _unmatched(tree, "README.md", Category.OUTSIDE_SUBJECT)
    _unmatched(tree, "scratch", Category.OUTSIDE_SUBJECT, folder_files=[f"tmp{n}.bin" for n in range(5)])
    _unmatched(tree, ".Trash-1000", Category.HIDDEN, folder_files=["old.ap.bin"])
    return tree


def video_tree(root) -> Tree:
    """Tracking videos: two sessions on one day, trial maps, junk."""
    tree = Tree(Path(root))
    tree.root.mkdir(parents=True, exist_ok=True)
    for session in ("dl59/20190731", "dl59/20190731_1", "SC026/20190802_surface"):
        h2o = session.split("/")[0]
        day = session.split("/")[1][:8]
        for trial in range(3):
            _file(tree, f"{session}/video/{h2o}_side_{108 + trial}-0000.avi", "tracking-video-trial")
        _file(tree, f"{session}/video/{h2o}_{day}_trialmap.txt", "tracking-video-map")
        _file(tree, f"{session}/video/thumbs.db", "tracking-video-unknown")
    _unmatched(tree, "dl59/2019-07-31", Category.OUTSIDE_SESSION, folder_files=["a.avi"])
    _unmatched(tree, "dl59/20190731/.hidden.avi", Category.HIDDEN)
    _unmatched(tree, "videos.zip", Category.OUTSIDE_SUBJECT)
    return tree


def remove(tree: Tree, subpath: str) -> None:
    """Remove a file or a folder from the tree on disk and from what a walk must register."""
    path = tree.root / subpath
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path, topdown=False):
            for name in filenames:
                os.unlink(os.path.join(dirpath, name))
            for name in dirnames:
                os.rmdir(os.path.join(dirpath, name))
        os.rmdir(path)
    else:
        path.unlink()
    for key in [key for key in tree.files if key == subpath or key.startswith(f"{subpath}/")]:
        del tree.files[key]
