"""Put axe-core's browser bundle (axe.min.js) into .cache/axe-core/<version>/ for the accessibility tests, without node.

The npm package's tarball is downloaded from the npm registry, checked against the registry's `dist.integrity`
(sha512, pinned here) and only `package/axe.min.js` is extracted. The tests inject that file into chromium.
"""
from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "4.14.1"
TARBALL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
# `npm view axe-core@4.14.1 dist.integrity`
INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
MEMBER = "package/axe.min.js"
ROOT = Path(__file__).resolve().parents[1]


def axe_path(cache: Path = ROOT / ".cache" / "axe-core") -> Path:
    """Where the tests find axe.min.js."""
    return cache / VERSION / "axe.min.js"


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def provision(target: Path) -> None:
    if target.is_file():
        print(f"axe-core {VERSION} present in {target.parent}")
        return
    print(f"Fetching axe-core {VERSION} from the npm registry...", flush=True)
    try:
        with urllib.request.urlopen(TARBALL, timeout=60) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"could not download {TARBALL}: {exc}; the accessibility tests need it "
                         f"(or put axe.min.js from axe-core {VERSION} at {target} yourself)") from None
    if _integrity(data) != INTEGRITY:
        raise SystemExit(f"{TARBALL} does not match the pinned integrity {INTEGRITY}; refusing to use it")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        bundle = archive.extractfile(MEMBER)
        if bundle is None:
            raise SystemExit(f"{MEMBER} is missing from {TARBALL}")
        script = bundle.read()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(script)
    partial.replace(target)  # never a half-written file at the final name
    print(f"axe-core {VERSION} verified (sha512) and stored in {target}")


if __name__ == "__main__":
    provision(axe_path(Path(sys.argv[1])) if len(sys.argv) > 1 else axe_path())
