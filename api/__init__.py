"""Anomalyze web frontend: the upload page and results dashboard in front of the ML API.

A package so that `gunicorn api.index:app` and Vercel's `api/index.py` entry import the same app.
"""
