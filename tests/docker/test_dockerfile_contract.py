"""The Dockerfile's contract, checked without any container engine."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
                if line.strip() and not line.strip().startswith("#")]


def index_of(prefix: str) -> int:
    return next(i for i, line in enumerate(INSTRUCTIONS) if line.startswith(prefix))


def test_base_image_is_an_argument_before_from():
    assert INSTRUCTIONS[0] == "ARG BASE_IMAGE=python:3.12-slim" and INSTRUCTIONS[1] == "FROM ${BASE_IMAGE}"


def test_dependencies_are_installed_before_the_code_is_copied():
    requirements = index_of("COPY requirements.txt")
    install = index_of("RUN pip install --no-cache-dir -r requirements.txt")
    first_code = index_of("COPY app.py")
    assert requirements < install < first_code


def test_runs_as_a_non_root_user_exposes_8080_and_keeps_data_in_a_volume():
    user = INSTRUCTIONS[index_of("USER ")].split()[1]
    assert user not in ("0", "root") and index_of("USER ") > index_of("RUN pip install")
    assert "EXPOSE 8080" in INSTRUCTIONS and 'VOLUME ["/data"]' in INSTRUCTIONS
    assert "APP_DATA_DIR=/data" in DOCKERFILE


def test_healthcheck_and_headless_streamlit_on_all_interfaces():
    health = INSTRUCTIONS[index_of("HEALTHCHECK")]
    assert "/_stcore/health" in health
    command = INSTRUCTIONS[index_of("CMD [\"streamlit\"")]
    for part in ('"run"', '"app.py"', '"--server.port=8080"', '"--server.address=0.0.0.0"', '"--server.headless=true"',
                 '"--browser.gatherUsageStats=false"'):
        assert part in command


def test_no_secret_and_no_local_state_goes_into_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", ".venv", ".data", ".cache", "tests", "*.pem", ".git"):
        assert entry in ignored
    assert not re.search(r"(?i)(secret|password|token)\s*=", DOCKERFILE.replace("TIKTOKEN", ""))
    assert not any(line.startswith("COPY . ") for line in INSTRUCTIONS)  # only named product folders are copied


def test_every_product_package_and_the_page_settings_go_into_the_image():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "localdev", "bench", "scripts"}
    copied = {line.split()[1] for line in INSTRUCTIONS if line.startswith("COPY ")}
    assert packages <= copied, f"not copied into the image: {packages - copied}"
    assert ".streamlit" in copied


def test_people_get_no_developer_toolbar_and_no_tracebacks():
    import tomllib

    page = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert page["client"] == {"toolbarMode": "minimal", "showErrorDetails": "none"}
    assert "--client.showErrorDetails" not in DOCKERFILE  # the image keeps the production setting
