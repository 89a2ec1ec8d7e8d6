"""The WSGI application gunicorn serves: `gunicorn app.wsgi:app` (see runway.yaml)."""

from app import create_app

app = create_app()
