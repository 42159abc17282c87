"""The frontend app factory and the module-level `app` that gunicorn and Vercel serve.

The factory only wires things together: settings from the environment (api/config.py),
overridden by the caller's `config` (tests pass a fake sleep/clock and a test API URL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import analysis, api_client, errors, pages, security
from api.config import load_config, max_content_length


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(load_config())
    if config:
        app.config.update(config)
    app.config["MAX_CONTENT_LENGTH"] = max_content_length(app.config["MAX_UPLOAD_MB"])
    errors.init_app(app)
    security.init_app(app)
    api_client.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(analysis.bp)
    return app


app = create_app()


def main() -> None:
    """Flask's development server on 127.0.0.1:$PORT (production uses gunicorn)."""
    app.run(host="127.0.0.1", port=app.config["PORT"])


if __name__ == "__main__":
    main()
