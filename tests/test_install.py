"""A regular (not editable) `pip install .` finds its recipes and the shipped bundles (trainer/paths.py),
and without extras it is the codec alone: no torch, the online bundles (issue 34)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


# The codec without the training stack (issue 34): encode, decode, info, the API and the Pillow plugin
# with the online bundles import none of these; a network bundle names the extra it needs in one line.
TRAINING_STACK = ("torch", "transformers", "peft", "accelerate", "datasets", "tensorboard", "bitsandbytes",
                  "omegaconf", "constriction")
EXPECTED = REPO / "tests" / "expected"
ONLINE_GOLDEN = {"pixlm-online-fast": EXPECTED / "astronaut-64x40.online-fast.pxl",
                 "pixlm-online-max": EXPECTED / "astronaut-64x40.online-max.pxl"}
# Run in a fresh interpreter: any import of the training stack raises (a finder placed first), and
# at the end none of it may be in sys.modules. The golden streams decode to their image and the image
# re-encodes to the golden bytes (CLI, API and Pillow plugin); a network bundle is refused in one line.
_WITHOUT_TORCH = r'''
import importlib.abc, io, json, sys
from pathlib import Path

BLOCKED = set(sys.argv[1].split(","))
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Blocked())

import numpy as np
from PIL import Image
from trainer import api, cli
import trainer.pillow  # noqa: F401  (registers .pxl with Pillow)

expected, work = Path(sys.argv[2]), Path(sys.argv[3])
golden = json.loads(sys.argv[4])
image = np.asarray(Image.open(expected / "astronaut-64x40.png"))
for bundle, stream in golden.items():
    data = Path(stream).read_bytes()
    assert np.array_equal(api.decode(data), image), bundle
    assert np.array_equal(np.asarray(Image.open(stream)), image), bundle
    assert api.info(data)["bundle_kind"] == "online", bundle
    out = work / f"{bundle}.png"
    assert cli.main(["decode", stream, str(out), "--quiet"]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), image), bundle
    again = work / f"{bundle}.pxl"
    assert cli.main(["encode", str(expected / "astronaut-64x40.png"), str(again), "--bundle",
                     str(Path(sys.argv[5]) / bundle), "--no-fallback", "--quiet", "--threads", "2"]) == 0
    assert again.read_bytes() == data, bundle
    assert cli.main(["info", str(again)]) == 0
assert api.decode(api.encode(image[:9, :7], bundle="pixlm-online-fast")).tobytes() == image[:9, :7].tobytes()
buffer = io.BytesIO()
Image.fromarray(image).save(buffer, "PXL", bundle="pixlm-online-fast")
assert np.array_equal(np.asarray(Image.open(io.BytesIO(buffer.getvalue()))), image)
# a JPEG file comes back byte for byte (Lepton / JPEG-XL, no model)
Image.fromarray(image).save(work / "photo.jpg", quality=90)
assert cli.main(["encode", str(work / "photo.jpg"), str(work / "photo.pxl"), "--quiet"]) == 0
assert cli.main(["decode", str(work / "photo.pxl"), str(work / "back.jpg"), "--quiet"]) == 0
assert (work / "back.jpg").read_bytes() == (work / "photo.jpg").read_bytes()
# pixlm bench: an online bundle, a baseline and a --files run (threads through trainer.cpu, no torch)
(work / "set").mkdir()
Image.fromarray(image).save(work / "set" / "a.png")
fast = str(Path(sys.argv[5]) / "pixlm-online-fast")
assert cli.main(["bench", "--data", str(work / "set"), "--bundle", fast, "--baselines", "png", "--threads", "1",
                 "--out", str(work / "bench"), "--quiet"]) == 0
totals = json.loads((work / "bench" / "report.json").read_text())["sets"][0]["codecs"]
assert totals["pixlm-online-fast"]["decodes_exact"] == totals["png"]["decodes_exact"] == 1, totals
(work / "jpegs").mkdir()
(work / "jpegs" / "photo.jpg").write_bytes((work / "photo.jpg").read_bytes())
assert cli.main(["bench", "--files", "--data", str(work / "jpegs"), "--bundle", fast, "--threads", "1",
                 "--out", str(work / "bench-files"), "--quiet"]) == 0
totals = json.loads((work / "bench-files" / "report.json").read_text())["sets"][0]["codecs"]
assert totals["pixlm-online-fast"]["decodes_exact"] == 1, totals
loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
assert not loaded, loaded
# a network bundle: one line naming the extra, exit code 2, nothing written
code = cli.main(["decode", str(expected / "astronaut-64x40.context-v5.pxl"), str(work / "v5.png")])
assert code == 2 and not (work / "v5.png").exists()
print("ok")
'''


def test_the_online_codec_imports_no_training_stack(tmp_path):
    """Issue 34: encode, decode, info, the API, the Pillow plugin and `pixlm bench` (pixels and
    --files) with the online bundles run with torch and the rest of the training stack unimportable,
    and load none of it; the golden streams decode and re-encode to the same bytes there, a JPEG file
    comes back byte for byte. A network bundle's stream is refused in one line that names the extra."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    run = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, ",".join(TRAINING_STACK), str(EXPECTED),
                          str(tmp_path), json.dumps({k: str(v) for k, v in ONLINE_GOLDEN.items()}),
                          str(REPO / "checkpoints")], cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stdout + run.stderr
    refusal = [line for line in run.stderr.splitlines() if line.startswith("pixlm: error:")]
    assert refusal == ["pixlm: error: bundle pixlm-context-v5 needs torch, constriction: pip install 'pixlm[train]'"], \
        run.stderr


def test_a_network_bundle_names_the_extra_it_needs(monkeypatch):
    """Without torch, opening a network bundle's codec is refused with one line naming the extra,
    before any torch import is tried."""
    import importlib.util

    from trainer.codec import bundle as bundle_module
    from trainer.codec.bundle import BundleError, open_bundle
    from trainer.codec.registry import open_codec

    real = importlib.util.find_spec
    monkeypatch.setattr(bundle_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    for name in ("pixlm-context-v3", "pixlm-context-v5"):
        with pytest.raises(BundleError) as refused:
            open_codec(open_bundle(REPO / "checkpoints" / name))
        assert str(refused.value) == f"bundle {name} needs torch: pip install 'pixlm[train]'"
    assert open_codec(REPO / "checkpoints" / "pixlm-online-fast").bundle.kind == "online"


def test_the_context_model_type_is_the_one_bundles_recognise():
    from trainer.codec.bundle import CONTEXT_MODEL_TYPE
    from trainer.models.context import MODEL_TYPE

    assert CONTEXT_MODEL_TYPE == MODEL_TYPE


def test_denormals_are_flushed_without_torch_as_torch_flushes_them():
    """The online engine's float64 least squares run as they did beside torch: trainer.cpu sets the
    same flush-to-zero bits through the C library as torch.set_flush_denormal(True) (the whole
    floating-point environment compared, in a thread started after, as the engine's stripes are)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "aarch64", "arm64") or not sys.platform.startswith("linux"):
        pytest.skip("the C library route is for Linux on x86-64 and AArch64")
    probe = ("import ctypes, ctypes.util, sys, threading, numpy as np\n"
             "if sys.argv[1] == 'torch':\n    import torch; torch.set_flush_denormal(True)\n"
             "else:\n    from trainer.cpu import flush_denormals; flush_denormals()\n"
             "libm, seen = ctypes.CDLL(ctypes.util.find_library('m')), []\n"
             "def look():\n    env = ctypes.create_string_buffer(32); libm.fegetenv(env)\n"
             "    x86 = len(sys.argv) > 2\n"
             "    control = (env.raw[:2] + (int.from_bytes(env.raw[28:32], 'little') & ~0x3f).to_bytes(4, 'little')\n"
             "               if x86 else env.raw[:4])  # x87 control word and MXCSR less its flags; AArch64 FPCR\n"
             "    seen.append((control.hex(), float((np.array([1e-310]) * 1.0)[0])))\n"
             "thread = threading.Thread(target=look); thread.start(); thread.join()\n"
             "print(*seen[0], 'torch' in sys.modules)\n")
    x86 = ["x86"] if platform.machine().lower() in ("x86_64", "amd64") else []
    out = {how: subprocess.run([sys.executable, "-c", probe, how, *x86], cwd=REPO, capture_output=True, text=True)
           for how in ("torch", "cpu")}
    assert all(o.returncode == 0 for o in out.values()), out
    env_torch, flushed_torch, _ = out["torch"].stdout.split()
    env_cpu, flushed_cpu, loaded = out["cpu"].stdout.split()
    assert (env_cpu, flushed_cpu, loaded) == (env_torch, "0.0", "False") and flushed_torch == "0.0"


@pytest.mark.slow
def test_a_fresh_venv_without_extras_has_no_torch_and_codes_with_the_online_bundles(tmp_path):
    """A regular (not editable) `pip install .` into a new virtual environment (its dependencies
    from the package index, no extras): pixlm runs from the install, not this checkout, and finds its
    recipes and shipped bundles there (trainer/paths.py); torch is not importable, and `pixlm`
    decodes the online bundles' golden streams and re-encodes their image to the same bytes with the
    default bundle; a network bundle's stream is refused in one line naming the extra. ~100 s, most
    of it numba compiling the engine's kernels in the new environment (once per install)."""
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "gpu", "streams", "maps", "build",
                                                                "*.egg-info", "__pycache__", "gpu_ab", "benchmarks",
                                                                "data"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", str(source)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", PIXLM_BUNDLES="")
    work = tmp_path / "elsewhere"
    work.mkdir()
    run = lambda *a: subprocess.run([str(a[0]), *map(str, a[1:])], cwd=work, env=env, capture_output=True, text=True)
    python, pixlm = venv / "bin" / "python", venv / "bin" / "pixlm"
    absent = run(python, "-c", "import importlib.util as u; print([m for m in " + repr(TRAINING_STACK)
                 + " if u.find_spec(m)])")
    assert absent.returncode == 0 and absent.stdout.strip() == "[]", absent
    where = run(python, "-c", "import trainer, trainer.paths as p; print(trainer.__file__); "
                "print(p.resource('recipes')); print(p.resource('checkpoints'))")
    assert where.returncode == 0 and where.stdout.count(str(venv)) == 3, where
    assert "share/pixlm/recipes" in where.stdout and (Path(where.stdout.split()[1]) / "quickstart.yaml").is_file()
    image = np.asarray(Image.open(EXPECTED / "astronaut-64x40.png"))
    for bundle, stream in ONLINE_GOLDEN.items():
        dec = run(pixlm, "decode", stream, work / f"{bundle}.png", "--quiet")
        assert dec.returncode == 0, dec.stderr
        assert np.array_equal(np.asarray(Image.open(work / f"{bundle}.png")), image)
    enc = run(pixlm, "encode", EXPECTED / "astronaut-64x40.png", work / "default.pxl", "--no-fallback", "--quiet")
    assert enc.returncode == 0, enc.stderr
    assert (work / "default.pxl").read_bytes() == ONLINE_GOLDEN["pixlm-online-max"].read_bytes()
    refused = run(pixlm, "decode", EXPECTED / "astronaut-64x40.context-v5.pxl", work / "v5.png")
    assert refused.returncode == 2 and not (work / "v5.png").exists()
    assert refused.stderr.strip() == ("pixlm: error: bundle pixlm-context-v5 needs torch, constriction: "
                                      "pip install 'pixlm[train]'")
