"""Entry point for Vercel's Python runtime and for `gunicorn api.index:app`."""

from api.app_vercel import app

__all__ = ["app"]
