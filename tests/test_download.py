"""The download command against a local HTTP server (127.0.0.1 only)."""

import functools
import hashlib
import json
import threading
from http.server import HTTPServer, SimpleHTTPRequestHandler

import pytest

from trainer.cli import main
from trainer.train.download import DownloadError, download, load_manifest


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def manifest_for(root, base, names, tamper=None):
    files = []
    for name in names:
        data = (root / name).read_bytes()
        digest = hashlib.sha256(data if name != tamper else data + b"x").hexdigest()
        files.append({"path": name, "url": f"{base}/{name}", "sha256": digest})
    return {"name": "test", "files": files}


def test_download_verifies_and_skips_what_is_there(server, tmp_path, crop_dir):
    root, base = server
    for p in sorted(crop_dir.glob("*.png"))[:3]:
        (root / p.name).write_bytes(p.read_bytes())
    manifest = manifest_for(root, base, ["crop0.png", "crop1.png", "crop2.png"])
    dest = tmp_path / "dest"
    fetched = []
    assert len(download(manifest, dest, progress=fetched.append)) == 3 and len(fetched) == 3
    assert (dest / "crop1.png").read_bytes() == (root / "crop1.png").read_bytes()
    fetched.clear()
    download(manifest, dest, progress=fetched.append)
    assert fetched == []  # already verified on disk: nothing fetched again


def test_checksum_mismatch_and_missing_files_fail_and_leave_nothing(server, tmp_path, crop_dir):
    root, base = server
    (root / "crop0.png").write_bytes((crop_dir / "crop0.png").read_bytes())
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="does not match"):
        download(manifest_for(root, base, ["crop0.png"], tamper="crop0.png"), dest)
    assert list(dest.iterdir()) == []
    missing = {"files": [{"path": "nope.png", "url": f"{base}/nope.png", "sha256": "0" * 64}]}
    with pytest.raises(DownloadError, match="404"):
        download(missing, dest)
    assert list(dest.iterdir()) == []


def test_cli_download_and_unknown_manifest(server, tmp_path, crop_dir, capsys):
    root, base = server
    (root / "crop2.png").write_bytes((crop_dir / "crop2.png").read_bytes())
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest_for(root, base, ["crop2.png"])))
    assert main(["download", str(path), "--dest", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "crop2.png").is_file()
    assert main(["download", "no-such-set", "--dest", str(tmp_path / "out")]) == 2
    assert "kodak" in capsys.readouterr().err


def test_shipped_kodak_manifest_is_complete():
    manifest = load_manifest("kodak")
    assert [f["path"] for f in manifest["files"]] == [f"kodim{i:02d}.png" for i in range(1, 25)]
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])
