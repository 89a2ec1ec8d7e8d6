"""`python -m app`: Flask's development server on 127.0.0.1:$PORT, for local work only (production: gunicorn)."""

import os

from app import create_app
from app.config import DEFAULT_PORT

create_app().run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", DEFAULT_PORT)))
