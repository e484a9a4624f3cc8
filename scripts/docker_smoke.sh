#!/usr/bin/env bash
# Build the Dockerfile with podman on a local Debian base image (no registry is reachable here), run it on a free
# 127.0.0.1 port, and check: /_stcore/health answers ok, the HEALTHCHECK passes, the process is not root, and no
# .env, key or secret is inside the image. Always cleans up. Exit 77 = cannot run here (podman not installable).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${DOCKER_SMOKE_DIR:-/var/tmp/entra-chat-podman}"
TAG="localhost/entra-chat:smoke-$$"
NAME="entra-chat-smoke-$$"
say() { echo "[docker-smoke] $*"; }

if [ "$(id -u)" -ne 0 ]; then say "skipped: needs root for rootful podman"; exit 77; fi
if ! command -v podman >/dev/null || ! command -v mmdebstrap >/dev/null || ! command -v curl >/dev/null; then
  say "installing podman and mmdebstrap from Debian..."
  "$ROOT/scripts/apt_install.sh" podman runc netavark iptables mmdebstrap uidmap curl || { say "skipped: podman cannot be installed"; exit 77; }
fi

mkdir -p "$WORK"
cat >"$WORK/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
CONF
hard="$(ulimit -Hn)"
cat >"$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=${hard}:${hard}", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_STORAGE_CONF="$WORK/storage.conf" CONTAINERS_CONF="$WORK/containers.conf"

cleanup() {
  podman rm -f -t 5 "$NAME" >/dev/null 2>&1 || true
  podman rmi -f "$TAG" >/dev/null 2>&1 || true
  podman system reset -f >/dev/null 2>&1 || true
  rm -rf "$WORK/secrets"
}
trap cleanup EXIT

if [ ! -s "$WORK/python-base.tar" ]; then
  say "making the local base image with mmdebstrap (first time only, ~30 s)..."
  mmdebstrap --quiet --format=tar --variant=minbase \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates,passwd \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    --customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1"/usr/local/share/ca-certificates/ 2>/dev/null || true; chroot "$1" update-ca-certificates >/dev/null' \
    bookworm "$WORK/python-base.tar.part"
  mv "$WORK/python-base.tar.part" "$WORK/python-base.tar"
fi
podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' --change 'CMD ["python3"]' \
  "$WORK/python-base.tar" localhost/python-base:latest >/dev/null

say "building the Dockerfile (--format docker keeps the HEALTHCHECK)..."
podman build --quiet --pull=never --format docker --build-arg BASE_IMAGE=localhost/python-base -t "$TAG" "$ROOT" >/dev/null

user="$(podman image inspect "$TAG" --format '{{.Config.User}}')"
health="$(podman image inspect "$TAG" --format '{{json .HealthCheck}}')"
[ "$user" != "" ] && [ "$user" != "0" ] && [ "$user" != "root" ] || { say "FAIL: image runs as root ($user)"; exit 1; }
echo "$health" | grep -q "_stcore/health" || { say "FAIL: no HEALTHCHECK on /_stcore/health ($health)"; exit 1; }

say "checking that no secret or local state is in the image..."
found="$(podman run --rm --entrypoint sh "$TAG" -c 'cd /app && find / -xdev \( -name ".env" -o -name "*.pem" -o -name "*.key" -o -name ".venv" -o -name ".data" -o -name "session-secret" \) -not -path "/proc/*" -not -path "/usr/*" -not -path "/etc/ssl/*" 2>/dev/null; ls -A /app')"
echo "$found" | grep -Eq '(^|/)\.env$|\.pem$|\.key$|\.venv|\.data|session-secret|^tests$' && { say "FAIL: found in image: $found"; exit 1; }
podman history --no-trunc --format '{{.CreatedBy}}' "$TAG" | grep -Eiq 'secret=|client_secret|password=' && { say "FAIL: a secret in a layer's command"; exit 1; }

# Settings through environment variables and a mounted secret file (as Docker/Kubernetes secrets are).
mkdir -p "$WORK/secrets"
python3 -c 'import secrets; print(secrets.token_urlsafe(48), end="")' >"$WORK/secrets/APP_SESSION_SECRET"
printf 'smoke-test-client-secret-value' >"$WORK/secrets/ENTRA_CLIENT_SECRET"
chmod 644 "$WORK/secrets"/*
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
podman run -d --name "$NAME" -p "127.0.0.1:$port:8080" \
  -e ENTRA_TENANT_ID=72f988bf-86f1-41af-91ab-2d7cd011db47 -e ENTRA_CLIENT_ID=3f8a9b1c-2d4e-4f6a-8b0c-1d2e3f4a5b6c \
  -e AZURE_OPENAI_ENDPOINT=https://example.invalid -e APP_PUBLIC_URL=https://chat.example.invalid \
  -e ENTRA_REDIRECT_URI=https://chat.example.invalid/signin/callback -e APP_SECRETS_DIR=/run/secrets \
  -v "$WORK/secrets:/run/secrets:ro" "$TAG" >/dev/null 2> >(grep -v systemd >&2)

say "waiting for /_stcore/health on 127.0.0.1:$port..."
for _ in $(seq 120); do
  [ "$(curl -sS -m 2 "http://127.0.0.1:$port/_stcore/health" 2>/dev/null)" = "ok" ] && break
  sleep 0.5
done
[ "$(curl -fsS -m 2 "http://127.0.0.1:$port/_stcore/health")" = "ok" ] || { podman logs "$NAME" | tail -20; say "FAIL: not healthy"; exit 1; }
podman healthcheck run "$NAME" 2> >(grep -v systemd >&2) || { say "FAIL: HEALTHCHECK failed"; exit 1; }
uid="$(podman exec "$NAME" id -u)"
[ "$uid" != "0" ] || { say "FAIL: the process runs as root"; exit 1; }
say "PASS: healthy, HEALTHCHECK ok, uid $uid, settings read from environment and secret files, no secrets in the image"
