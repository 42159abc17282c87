"""The frontend's app factory; `api/index.py` builds the app that gunicorn and Vercel serve.

Nothing here runs at import, so importing the factory never reads the environment. The
factory only wires things together, from the configuration it is given: with no
`test_config`, the `ANOMALYZE_*` environment variables (api/config.py, parsed once, a bad
value stops the start naming it); with one, the documented defaults overridden by it (tests
pass a fake sleep/clock and a test API URL), and the environment is not read at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import analysis, analyst_tools, api_client, auth, baseline, errors, pages, security
from api.config import load_config, max_content_length


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    if test_config is None:
        app.config.from_mapping(load_config())
    else:
        app.config.from_mapping(load_config({}))
        app.config.from_mapping(test_config)
    app.config["MAX_CONTENT_LENGTH"] = max_content_length(app.config["MAX_UPLOAD_MB"])
    errors.init_app(app)
    security.init_app(app)
    api_client.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(analysis.bp)
    auth.init_app(app)
    app.register_blueprint(analyst_tools.bp)
    app.register_blueprint(baseline.bp)
    # The anonymous upload routes read no session: a cross-site request gains nothing.
    auth.csrf.exempt(analysis.analyze)
    auth.csrf.exempt(analysis.download_csv)
    return app


def main() -> None:
    """Flask's development server on 127.0.0.1:$PORT (production uses gunicorn)."""
    app = create_app()
    app.run(host="127.0.0.1", port=app.config["PORT"])


if __name__ == "__main__":
    main()
