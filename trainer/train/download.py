"""Download image sets listed in a manifest, each file checked against its sha256.

A manifest (`data/manifests/NAME.json`, or any JSON path) lists files as
`{"path": "kodim01.png", "url": "https://...", "sha256": "..."}`. A file whose bytes on disk
already match is skipped; a download goes to `PATH.part` and is renamed only after its checksum
matches, so an interrupted or tampered download never leaves a file that looks complete.
"""

import json
import urllib.error
import urllib.request
from pathlib import Path

from trainer.paths import resource
from trainer.checksums import sha256_of

MANIFESTS = resource("data/manifests")


class DownloadError(RuntimeError):
    pass


def load_manifest(name: str) -> dict:
    path = Path(name) if name.endswith(".json") else MANIFESTS / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in MANIFESTS.glob("*.json"))
        raise DownloadError(f"no manifest '{name}'; known: {', '.join(known)} (or give a .json path)")
    return json.loads(path.read_text())


def download(manifest: dict, dest: Path, timeout: float = 60.0, progress=None) -> list[Path]:
    """Fetch every file of the manifest into dest; returns the verified paths."""
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for entry in manifest["files"]:
        target = dest / entry["path"]
        if target.is_file() and sha256_of(target) == entry["sha256"]:
            done.append(target)
            continue
        part = target.with_name(target.name + ".part")
        try:
            with urllib.request.urlopen(entry["url"], timeout=timeout) as response, open(part, "wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
        except (urllib.error.URLError, OSError) as err:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{entry['url']}: {err}") from None
        actual = sha256_of(part)
        if actual != entry["sha256"]:
            part.unlink()
            raise DownloadError(f"{entry['url']}: sha256 {actual} does not match the manifest's {entry['sha256']}")
        part.replace(target)
        done.append(target)
        if progress:
            progress(target)
    return done
