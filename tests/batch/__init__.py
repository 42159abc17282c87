"""Scoring log archives on Dask (score_logs.py): exact results against one process, failures,
and the planning of window halos."""
