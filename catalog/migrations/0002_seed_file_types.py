"""The original pipeline's file types, and one "unknown" type per dataset type."""

from django.db import migrations

FILE_TYPES = [
    (
        "ephys-raw-neuropixels-ap-bin",
        "raw-ephys",
        "*.ap.bin",
        "Neuropixels action-potential band data",
    ),
    (
        "ephys-raw-neuropixels-ap-meta",
        "raw-ephys",
        "*.ap.meta",
        "Neuropixels action-potential band metadata",
    ),
    (
        "ephys-raw-neuropixels-lf-bin",
        "raw-ephys",
        "*.lf.bin",
        "Neuropixels local-field band data",
    ),
    (
        "ephys-raw-neuropixels-lf-meta",
        "raw-ephys",
        "*.lf.meta",
        "Neuropixels local-field band metadata",
    ),
    (
        "ephys-raw-neuropixels-sy",
        "raw-ephys",
        "*.imec*.SY*.txt",
        "Neuropixels sync-channel edges extracted by CatGT",
    ),
    ("ephys-raw-matlab-misc", "raw-ephys", "*.mat", "Other MATLAB file"),
    (
        "ephys-raw-nidq",
        "raw-ephys",
        "*.nidq.*",
        "NI-DAQ auxiliary channels (data, metadata, extracted events)",
    ),
    (
        "ephys-raw-ks2-amplitude-scaling",
        "raw-ephys",
        "amplitudes.npy",
        "Kilosort2 amplitude scaling of each spike",
    ),
    (
        "ephys-raw-ks2-channel-map",
        "raw-ephys",
        "channel_map.npy",
        "Kilosort2 channel map",
    ),
    (
        "ephys-raw-ks2-channel-positions",
        "raw-ephys",
        "channel_positions.npy",
        "Kilosort2 channel positions on the probe",
    ),
    (
        "ephys-raw-ks2-cluster-amplitudes",
        "raw-ephys",
        "cluster_Amplitude.tsv",
        "Kilosort2 cluster amplitudes",
    ),
    (
        "ephys-raw-ks2-cluster-contam",
        "raw-ephys",
        "cluster_ContamPct.tsv",
        "Kilosort2 cluster contamination percentages",
    ),
    (
        "ephys-raw-ks2-cluster-grouping",
        "raw-ephys",
        "cluster_group.tsv",
        "Cluster groups set during curation",
    ),
    (
        "ephys-raw-ks2-cluster-labeling",
        "raw-ephys",
        "cluster_KSLabel.tsv",
        "Kilosort2 cluster labels",
    ),
    (
        "ephys-raw-ks2-cluster-snr",
        "raw-ephys",
        "cluster_snr.npy",
        "Cluster signal-to-noise ratios",
    ),
    ("ephys-raw-ks2-cluster-table", "raw-ephys", "clus_Table.npy", "Cluster table"),
    (
        "ephys-raw-ks2-mean-waveforms",
        "raw-ephys",
        "mean_waveforms.npy",
        "Mean waveform of each cluster",
    ),
    (
        "ephys-raw-ks2-cluster-metrics",
        "raw-ephys",
        "metrics.csv",
        "Cluster quality metrics",
    ),
    (
        "ephys-raw-ks2-overlap-matrix",
        "raw-ephys",
        "overlap_matrix.npy",
        "Cluster overlap matrix",
    ),
    (
        "ephys-raw-ks2-overlap-summ-npy",
        "raw-ephys",
        "overlap_summary.npy",
        "Cluster overlap summary (NumPy)",
    ),
    (
        "ephys-raw-ks2-overlap-summ-csv",
        "raw-ephys",
        "overlap_summary.csv",
        "Cluster overlap summary (CSV)",
    ),
    ("ephys-raw-ks2-parameters", "raw-ephys", "params.*py", "Kilosort2 parameters"),
    (
        "ephys-raw-ks2-pc-features",
        "raw-ephys",
        "pc_features.npy",
        "Principal-component features of spikes",
    ),
    (
        "ephys-raw-ks2-pc-features-ind",
        "raw-ephys",
        "pc_feature_ind.npy",
        "Channel indices of the principal-component features",
    ),
    ("ephys-raw-ks2-results", "raw-ephys", "rez.mat", "Kilosort2 results structure"),
    (
        "ephys-raw-ks2-similar",
        "raw-ephys",
        "similar_templates.npy",
        "Template similarity matrix",
    ),
    (
        "ephys-raw-ks2-spike-times",
        "raw-ephys",
        "spike_times.npy",
        "Spike times in samples",
    ),
    (
        "ephys-raw-ks2-ftemplate",
        "raw-ephys",
        "template_features.npy",
        "Template features of spikes",
    ),
    (
        "ephys-raw-ks2-ftemplate-ind",
        "raw-ephys",
        "template_feature_ind.npy",
        "Template indices of the template features",
    ),
    (
        "ephys-raw-ks2-spike-template",
        "raw-ephys",
        "spike_templates.npy",
        "Template of each spike",
    ),
    ("ephys-raw-ks2-template", "raw-ephys", "templates.npy", "Spike templates"),
    (
        "ephys-raw-ks2-template-ind",
        "raw-ephys",
        "templates_ind.npy",
        "Channel indices of the templates",
    ),
    (
        "ephys-raw-ks2-whitening-mat",
        "raw-ephys",
        "whitening_mat.npy",
        "Whitening matrix",
    ),
    (
        "ephys-raw-ks2-whitening-mat-inv",
        "raw-ephys",
        "whitening_mat_inv.npy",
        "Inverse whitening matrix",
    ),
    (
        "ephys-raw-ks2-spike-clusters",
        "raw-ephys",
        "spike_clusters.npy",
        "Cluster of each spike",
    ),
    (
        "ephys-raw-ks2-cluster-groups",
        "raw-ephys",
        "cluster_groups.csv",
        "Cluster groups (CSV)",
    ),
    (
        "tracking-video-trial",
        "raw-video",
        "*_*_[0-9]*-*.[am][vp][i4]",
        "Tracking video of one trial",
    ),
    (
        "tracking-video-map",
        "raw-video",
        "*_????????_*.txt",
        "Map of trials to tracking videos",
    ),
    ("ephys-raw-unknown", "raw-ephys", "", "No known pattern matches this file name."),
    (
        "tracking-video-unknown",
        "raw-video",
        "",
        "No known pattern matches this file name.",
    ),
]


def seed_file_types(apps, schema_editor):
    FileType = apps.get_model("catalog", "FileType")
    for order, (name, dataset_type, glob, description) in enumerate(FILE_TYPES):
        FileType.objects.update_or_create(
            name=name,
            defaults={
                "dataset_type": dataset_type,
                "glob": glob,
                "description": description,
                "order": order,
            },
        )


def remove_file_types(apps, schema_editor):
    apps.get_model("catalog", "FileType").objects.filter(
        name__in=[row[0] for row in FILE_TYPES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [migrations.RunPython(seed_file_types, remove_file_types)]
