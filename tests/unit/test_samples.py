"""The sample env files stay in step with the settings: every variable they name exists."""
from pathlib import Path

from config.settings import SECTIONS

CONFIG = Path(__file__).resolve().parents[2] / "config"
OTHER_KNOWN = {"APP_SECRETS_DIR", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "TIKTOKEN_CACHE_DIR"}


def _known() -> set[str]:
    names = set(OTHER_KNOWN)
    for cls in SECTIONS.values():
        prefix = cls.model_config["env_prefix"]
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return names


def test_sample_files_only_name_real_settings():
    known = _known()
    for sample in ("azure.env.sample", "local.env.sample", "compose.azure.env.sample"):
        for line in (CONFIG / sample).read_text().splitlines():
            line = line.lstrip("# ").strip()
            if "=" in line and line.split("=")[0].isupper() and " " not in line.split("=")[0]:
                assert line.split("=")[0] in known, f"{sample}: {line.split('=')[0]} is not a setting"
