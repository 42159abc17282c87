"""Production entry point of the ML API: ``gunicorn api_server:app -c gunicorn.conf.py``.

Debug mode is never on here, whatever FLASK_DEBUG says (create_app sets DEBUG=False).
"""

from server import create_app
from server.gunicorn_errors import use_json_errors

use_json_errors()  # requests gunicorn refuses itself get the API's JSON error shape too
app = create_app()
