# deskflow: API and workers in one image (docker compose runs it as api and worker; README,
# "Operations"). Multi-stage: wheels are built in a throw-away stage with pip's build tools, and only
# the wheels are installed into a clean slim image that runs as an unprivileged user.

# -- build: the project and every dependency as wheels ------------------------------------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml ./
COPY rules ./rules
COPY sandbox ./sandbox
COPY server ./server
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# -- run ----------------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DESKFLOW_DATA_FILE=/var/lib/deskflow/deskflow-data.json
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/deskflow --create-home \
        --shell /usr/sbin/nologin deskflow
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/deskflow-*.whl \
    && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/deskflow
EXPOSE 8000
# /healthz answers 200 while the process is up (with DESKFLOW_METRICS_TOKEN set it wants that
# token). No curl in slim images: Python's urllib does it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; t = os.environ.get('DESKFLOW_METRICS_TOKEN'); r = u.Request('http://127.0.0.1:8000/healthz', headers={'Authorization': 'Bearer ' + t} if t else {}); sys.exit(0 if u.urlopen(r, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["deskflow"]
# API and a worker in one process, on DESKFLOW_REDIS_URL (or, unset, the embedded store saved in
# /var/lib/deskflow). docker-compose.yml runs `api` and `worker` instead.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
