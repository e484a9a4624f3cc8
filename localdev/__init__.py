"""Local stand-ins for Microsoft Entra ID and Azure OpenAI, for laptops and tests. Never imported by product code."""
from pathlib import Path

# The local tenant's deployments: today's reasoning models plus the classic ones it still holds (see the file).
LOCAL_CATALOG_FILE = Path(__file__).with_name("deployments.toml")
# The same plus Responses API deployments, for the app on the v1 API (LOCALDEV_API_VERSION=v1); the emulator serves it.
LOCAL_V1_CATALOG_FILE = Path(__file__).with_name("deployments-v1.toml")
