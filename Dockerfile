# cartoparty: the web app under gunicorn, for docker-compose.yml (or any PostGIS via DATABASE_URL).
#
#   docker build -t cartoparty .
#   docker run -e DATABASE_URL=postgresql+psycopg://user:pass@host:5432/db -e SECRET_KEY=... \
#              -p 127.0.0.1:8000:8000 -v cartoparty-photos:/data/photos cartoparty
#
# The repository layout is kept under /app: the code finds the Alembic migrations in
# /app/migrations, beside the package, so the project is installed in editable mode.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A home of its own: gunicorn (25.1 and later) puts its control socket in ~/.gunicorn.
RUN groupadd --system cartoparty \
    && useradd --system --gid cartoparty --home-dir /home/cartoparty --create-home \
       --shell /usr/sbin/nologin cartoparty

WORKDIR /app

# The dependencies first, read from pyproject.toml, so that a code change does not reinstall
# them (psycopg[binary] and Pillow come as wheels: no compiler or system library needed).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
       > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself (no dev extras). The code stays owned by root, read-only for the app.
COPY README.md gunicorn.conf.py ./
COPY migrations ./migrations
COPY cartoparty ./cartoparty
COPY static ./static
RUN pip install --no-deps -e . \
    && mkdir -p /app/instance /data/photos \
    && chown cartoparty:cartoparty /app/instance /data/photos

# Photos live outside the container; /app/instance only holds a generated secret key when
# SECRET_KEY is unset (set it: a key made inside a container is lost with the container).
ENV PHOTO_DIR=/data/photos \
    WEB_WORKERS=3 \
    WEB_THREADS=8
VOLUME ["/data/photos"]

USER cartoparty
EXPOSE 8000

# /api/presets needs no database: this says whether gunicorn answers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/presets', timeout=4)"]

# The exec form: gunicorn is PID 1 and gets `docker stop`'s SIGTERM (graceful shutdown).
# gunicorn.conf.py reads WEB_WORKERS and WEB_THREADS; the heartbeat files stay in memory.
CMD ["gunicorn", "--config", "/app/gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--worker-tmp-dir", "/dev/shm", "cartoparty:create_app()"]
