"""gunicorn's settings for cartoparty (`gunicorn -c gunicorn.conf.py`), shared by `make run`, the
Docker image and the tests that start a real server. The address stays on the command line.

Threaded workers: a worker's main loop accepts connections and waits for their first bytes
without holding a thread (gunicorn 23+ hands a connection that sent nothing within 5 s back to
the loop), and a client that dribbles its request holds one thread, not the whole worker, so
a few slow phones cannot stop the others (tests/test_slow_clients.py). More slow clients than
WEB_WORKERS × WEB_THREADS would still take every thread: on the Internet the reverse proxy
(deploy/Caddyfile) reads whole requests before passing them on.
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "3"))
# cartoparty.config sizes each worker's pool of PostgreSQL connections from the same variable:
# one connection per thread, so WEB_WORKERS × WEB_THREADS connections in all.
threads = int(os.environ.get("WEB_THREADS", "8"))
# A worker whose main loop is stuck this long is killed and replaced (with gthread, a slow
# request does not count: the loop keeps beating while threads work).
timeout = 30
# How long an idle kept-alive connection, or one that has sent nothing yet, is kept open.
keepalive = 5
graceful_timeout = 5
# A request line and headers of ordinary size: an overlong one is refused before the app runs.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
# Forwarded headers are trusted by the app alone (ProxyFix, FORWARDED_PROXIES), never by
# gunicorn, which would otherwise believe X-Forwarded-Proto from any local client.
forwarded_allow_ips = ""
accesslog = "-"
# No client address, Referer nor User-Agent: a log line says what was asked and how it went,
# not who asked (the privacy notice on the join page says so).
access_log_format = '%(t)s "%(r)s" %(s)s %(b)s %(M)sms'
