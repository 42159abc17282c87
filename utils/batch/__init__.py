"""Scoring whole log archives on a Dask cluster (``score_logs.py``).

- ``inputs``: which files, which sensor streams, in what order (Zeek's archive layout too);
- ``pieces``: files cut into partitions (a gzip file is one), and the exact window halo;
- ``readers``: the one place this package calls the record readers, feature derivation,
  scoring and the model store;
- ``worker``: what runs on the workers (the model cache, reading, scoring, writing Parquet);
- ``summary``: the per-partition tallies and ``summary.json``;
- ``progress``: the progress line on the terminal;
- ``job``: the run itself, on a LocalCluster or an existing scheduler.
"""
