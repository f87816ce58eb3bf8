"""gunicorn settings for the web process (the commands in docker-compose.yml and the docs use this file)."""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# Query strings can carry ids only; never log request bodies (they hold patients' replies).
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(D)sus'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
