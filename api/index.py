"""Entry point for Vercel's Python runtime and for `gunicorn api.index:app`: the app built
from the environment, once, when the server imports this module."""

from api.app_vercel import create_app

app = create_app()

__all__ = ["app"]
