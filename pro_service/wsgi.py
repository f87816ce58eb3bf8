"""WSGI entrypoint for gunicorn: `gunicorn -c config/gunicorn.conf.py pro_service.wsgi:app`."""

from pro_service import create_app

app = create_app()
