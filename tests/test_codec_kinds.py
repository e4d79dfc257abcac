"""The one table of codec kinds (trainer.codec.kinds, issue 34 item 4): opening, loading, the codec,
`pixlm info` and export all read it, so a kind added to the table alone is opened end to end; and
`--bundle NAME` resolves on the CLI as `bundle=NAME` does in the API."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import api, cli
from trainer.codec import kinds
from trainer.codec.bundle import BundleError, open_bundle, resolve_bundle, shipped_bundles, write_manifest
from trainer.codec.container import Header, pack
from trainer.codec.info import stream_info
from trainer.codec.registry import open_codec
from trainer.codec.stream import CodecError

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "tests" / "expected" / "astronaut-32x20.png"


class FakeCodec:
    """A codec class named by the fake kind's declaration, imported through the table."""

    def __init__(self, bundle, **kwargs):
        self.bundle, self.kwargs = bundle, kwargs


def _fake_settings(folder, codec, version):
    return {"precision": 12, "settings": codec["fake"]}


FAKE = kinds.CodecKind("fake", (99,), _fake_settings, lambda bundle: ("model of", bundle.path.name),
                       f"{__name__}:FakeCodec")


def _fake_bundle(folder: Path) -> Path:
    folder.mkdir()
    (folder / "codec.json").write_text(json.dumps({"format_version": 99, "kind": "fake", "fake": {"depth": 3}}))
    (folder / "tables.bin").write_bytes(b"\x00" * 8)
    write_manifest(folder)
    return folder


def test_every_shipped_bundle_opens_with_its_kind_from_the_table():
    names = shipped_bundles()
    assert {"pixlm-online-fast", "pixlm-online-max", "pixlm-context-v5"} <= set(names)
    assert any(name.startswith("previous/") for name in names)
    seen = set()
    for name in names:
        folder = resolve_bundle(name)
        bundle = open_bundle(folder)
        kind = kinds.kind_of(folder)
        version = json.loads((folder / "codec.json").read_text())["format_version"]
        assert bundle.kind == kind.name and version in kind.versions, name
        seen.add(kind.name)
    assert seen == {"online", "context"}
    # Every kind's codec class is where its declaration says (online: no torch behind it).
    from trainer.codec.stream import StreamCodec

    assert all(issubclass(kind.codec_class(), StreamCodec) for kind in kinds.KINDS)
    assert kinds.versions() == (1, 2, 3, 4, 5)


def test_info_reports_the_kind_the_table_gives():
    for stream in sorted((ROOT / "tests" / "expected").glob("astronaut-64x40*.pxl")):
        facts = stream_info(stream.read_bytes())
        assert facts["bundle_kind"] == open_bundle(Path(facts["bundle"])).kind, stream.name


def test_a_kind_added_to_the_table_alone_is_opened_loaded_coded_and_reported(tmp_path, monkeypatch):
    folder = _fake_bundle(tmp_path / "fake-bundle")
    with pytest.raises(BundleError, match="bundle format 99 is not one of 1, 2, 3, 4, 5"):
        open_bundle(folder)  # not in the table: refused
    monkeypatch.setattr(kinds, "KINDS", (FAKE, *kinds.KINDS))
    bundle = open_bundle(folder)
    assert (bundle.kind, bundle.precision, bundle.settings) == ("fake", 12, {"depth": 3})
    assert bundle.load_model() == ("model of", "fake-bundle")
    codec = open_codec(folder, threads=2)
    assert isinstance(codec, FakeCodec) and codec.bundle == bundle and codec.kwargs == {"threads": 2}
    with pytest.raises(CodecError, match="fake bundles code on the CPU"):
        open_codec(bundle, device="cuda")
    monkeypatch.setenv("PIXLM_BUNDLES", str(tmp_path))
    header = Header(bytes.fromhex(bundle.bundle_id[:32]), "fake-v1", "RGB", 2, 1, 3, 1, 1, 12, 0)
    facts = stream_info(pack(header, b"payload"))
    assert (facts["bundle_name"], facts["bundle_kind"]) == ("fake-bundle", "fake")


def test_a_format_read_by_another_kind_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "codec.json").write_text(json.dumps({"format_version": 5, "precision": 16}))  # no "kind": "online"
    write_manifest(folder)
    with pytest.raises(BundleError, match="a format 5 bundle is of kind online, not lm"):
        open_bundle(folder)


def test_export_online_writes_the_format_its_kind_reads(tmp_path):
    from trainer.export import export_online

    bundle = export_online(tmp_path / "fast", "fast")
    codec = json.loads((tmp_path / "fast" / "codec.json").read_text())
    assert bundle.kind == kinds.ONLINE.name == codec["kind"] and codec["format_version"] in kinds.ONLINE.versions
    assert kinds.kind_of(tmp_path / "fast") is kinds.ONLINE


def test_the_cli_takes_a_shipped_bundle_by_name_as_the_api_does(tmp_path, capsys):
    out = tmp_path / "x.pxl"
    assert cli.main(["encode", str(IMAGE), str(out), "--bundle", "pixlm-online-fast", "--quiet"]) == 0
    assert out.read_bytes() == api.encode(IMAGE, bundle="pixlm-online-fast")
    assert api.info(out)["bundle_name"] == "pixlm-online-fast"
    assert cli.main(["decode", str(out), str(tmp_path / "x.png"), "--bundle", "pixlm-online-fast", "--quiet"]) == 0
    assert api.bundle_path("previous/pixlm-online-fast-2026-12-06") == resolve_bundle(
        "previous/pixlm-online-fast-2026-12-06")


@pytest.mark.parametrize("command", ["encode", "decode", "bench"])
def test_an_unknown_bundle_name_is_one_line_listing_the_shipped_ones_and_exit_2(command, tmp_path, capsys):
    argv = {"encode": ["encode", str(IMAGE), str(tmp_path / "x.pxl")],
            "decode": ["decode", str(tmp_path / "x.pxl"), str(tmp_path / "x.png")],
            "bench": ["bench", "--data", str(tmp_path), "--out", str(tmp_path / "report")]}[command]
    assert cli.main([*argv, "--bundle", "pixlm-online-nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("pixlm: error: no bundle 'pixlm-online-nope'"), err
    assert all(name in err for name in shipped_bundles())
    assert not any(tmp_path.iterdir())  # nothing written
    with pytest.raises(BundleError) as refused:
        api.encode(IMAGE, bundle="pixlm-online-nope")
    assert f"pixlm: error: {refused.value}" == err


def test_encoding_by_name_with_the_online_bundle_imports_no_torch(tmp_path):
    probe = ("import sys\nimport trainer.cli as cli\n"
             f"code = cli.main(['encode', {str(IMAGE)!r}, {str(tmp_path / 'x.pxl')!r}, '--bundle', 'pixlm-online-fast', "
             "'--quiet'])\n"
             f"code += cli.main(['info', {str(tmp_path / 'x.pxl')!r}])\n"
             "print('exit', code, 'torch', 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.stdout.strip().splitlines()[-1] == "exit 0 torch False", out.stdout + out.stderr
