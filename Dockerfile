# The chat app. Real builds use python:3.12-slim; the test suite builds the same file on a local Debian base image
# (no registry is reachable there): podman build --build-arg BASE_IMAGE=localhost/python-base.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_DATA_DIR=/data \
    APP_AUDIT_STDOUT=true \
    TIKTOKEN_CACHE_DIR=/app/tiktoken \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin chat \
 && mkdir -p /data /app && chown chat:chat /data

WORKDIR /app
# Dependencies first: this layer is reused until requirements.txt changes.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
# tiktoken's files, checked by sha256, so token counts work without reaching the internet at run time.
COPY scripts/provision_tiktoken.py scripts/
RUN python scripts/provision_tiktoken.py /app/tiktoken && rm -rf scripts

COPY app.py ./
COPY .streamlit ./.streamlit
COPY auth ./auth
COPY callbacks ./callbacks
COPY chains ./chains
COPY config ./config
COPY documents ./documents
COPY experiments ./experiments
COPY engine ./engine
COPY memory ./memory
COPY store ./store
COPY ui ./ui
COPY web ./web

USER 1000
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/_stcore/health', timeout=4).read() == b'ok' else 1)"]
# Configuration comes only from environment variables and secret files (APP_SECRETS_DIR, e.g. /run/secrets).
# app.py upgrades the database schema before serving (config/migrations: one replica at a time; a database newer than
# the image stops it with exit status 2 and the reason); `python -m config.migrations` does the same as a job of its own.
CMD ["streamlit", "run", "app.py", "--server.port=8080", "--server.address=0.0.0.0", "--server.headless=true", "--browser.gatherUsageStats=false"]
