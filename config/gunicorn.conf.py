"""gunicorn settings for the web process (the commands in docker-compose.yml and the docs use this file)."""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# One process per core plus one (Python runs one thread at a time per process), and 16 threads each to
# cover the time a request waits on PostgreSQL. The webhook stores the replies that arrive together in one
# process with one insert (pro_service/ingest/store.py), so more threads per process means fewer,
# larger inserts: 8 threads halved PostgreSQL's CPU per reply against 4, and 16 raised the webhook's peak
# a further 7 % against 8, the bare Flask handler's not at all (32: no better; docs/benchmarks.md).
# In a container with a CPU quota the host's cores are counted: set GUNICORN_WORKERS there.
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
workers = int(os.environ.get("GUNICORN_WORKERS", str(_cores + 1)))
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# The path without its query string: queries carry names, phone digits and MRNs (searches), which must
# stay out of logs (issue 15); never log request bodies either (they hold patients' replies).
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(D)sus'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
