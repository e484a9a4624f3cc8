"""Put tiktoken's o200k_base and cl100k_base files into TIKTOKEN_CACHE_DIR without reaching the internet.

tiktoken downloads its BPE files on first use. The litellm 1.109.1 wheel on PyPI ships both files already named
the way tiktoken's cache expects; we download that wheel without installing it, extract the two files and check
their sha256 against the values tiktoken itself verifies.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "litellm==1.109.1"
INSIDE = "litellm/litellm_core_utils/tokenizers/"
FILES = {  # cache file name (sha1 of the download URL) -> sha256 that tiktoken verifies
    "fb374d419588a4632f3f557e76b4b70aebbca790": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",  # o200k_base
    "9b5ad71b2ce5302211f9c61530b329a4922fc6a4": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",  # cl100k_base
}


def _ok(path: Path, digest: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest


def provision(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    missing = {name: digest for name, digest in FILES.items() if not _ok(target / name, digest)}
    if not missing:
        print(f"tiktoken files present in {target}")
        return
    print(f"Fetching tiktoken files from the {WHEEL} wheel (download only, not installed)...", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", scratch], check=True)
        wheel = next(Path(scratch).glob("litellm-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name, digest in missing.items():
                data = archive.read(INSIDE + name)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise SystemExit(f"tiktoken file {name} in {wheel.name} has an unexpected sha256; refusing to use it")
                (target / name).write_bytes(data)
    print(f"tiktoken files verified (sha256) and stored in {target}")


if __name__ == "__main__":
    provision(Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/tiktoken"))
