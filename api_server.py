"""Production entry point of the ML API: ``gunicorn api_server:app -c gunicorn.conf.py``.

Debug mode is never on here, whatever FLASK_DEBUG says (create_app sets DEBUG=False).
"""

from server import create_app

app = create_app()
