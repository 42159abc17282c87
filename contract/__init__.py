"""What the ML API and the web frontend agree on, importable by both: the KDD record layout
and the JSON error shape. Standard library only, importing nothing of ours, so the frontend's
deployment (api/, Vercel) can carry it without the library (utils/) or the server (server/).
"""
