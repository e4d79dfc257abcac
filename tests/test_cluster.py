"""`pixlm encode|decode --ray`: every file a task on a real local Ray instance (2 CPUs); a run
killed mid-way loses nothing and the same command resumes it, every output exact."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "checkpoints" / "pixlm-online-max"  # JPEG-XL e9 beside the engine: ~1 s a file here


def pixlm(*args, **kwargs):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_ADDRESS": ""}
    return subprocess.Popen([sys.executable, "-m", "trainer.cli", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kwargs)


@pytest.fixture
def folder(photos, tmp_path) -> Path:
    source = tmp_path / "photos"
    source.mkdir()
    for i, path in enumerate(photos[:4] * 2):  # 8 files of real photos, 256x320
        array = np.asarray(Image.open(path).convert("RGB"))[16 * i:16 * i + 256, :320]
        Image.fromarray(np.ascontiguousarray(array)).save(source / f"p{i}.png")
    return source


def stop_ray():
    subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], capture_output=True)


def test_a_killed_ray_run_resumes_and_every_output_is_exact(folder, tmp_path):
    streams, back = tmp_path / "streams", tmp_path / "back"
    try:
        run = pixlm("encode", folder, streams, "--ray", "--bundle", BUNDLE)
        deadline = time.time() + 240
        while time.time() < deadline and len(list(streams.glob("*.pxl"))) < 2 and run.poll() is None:
            time.sleep(0.2)
        killed = run.poll() is None
        if killed:
            os.killpg(run.pid, signal.SIGKILL)  # the driver and everything it started
        run.wait()
        stop_ray()
        first = {p.name for p in streams.glob("*.pxl")}
        assert first and not list(streams.glob(".*.tmp"))  # only whole outputs, never a torn one
        resumed = pixlm("encode", folder, streams, "--ray", "--bundle", BUNDLE)
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err
        summary = out.strip().splitlines()[-1]
        assert summary.startswith("ray: 8 files: ") and f"{len(first)} skipped (already exact)" in summary, out
        assert killed or len(first) == 8
        decoded = pixlm("decode", streams, back, "--ray")
        out, err = decoded.communicate(timeout=300)
        assert decoded.returncode == 0, err
    finally:
        stop_ray()
    import imagecodecs  # an independent decoder, at the files' full depth

    for png in folder.glob("*.png"):
        assert np.array_equal(imagecodecs.png_decode((back / png.name).read_bytes()),
                              imagecodecs.png_decode(png.read_bytes()))


def test_without_ray_the_flag_is_one_line_and_jobs_still_work(folder, tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from trainer.cli import main; "
            f"sys.exit(main(['encode', {str(folder)!r}, {str(tmp_path / 'o')!r}, '--ray']))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0 and "pip install" in run.stderr
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
    jobs = pixlm("encode", folder, tmp_path / "j", "--jobs", "2", "--bundle", ROOT / "checkpoints" / "pixlm-online-fast")
    out, err = jobs.communicate(timeout=300)
    assert jobs.returncode == 0 and len(list((tmp_path / "j").glob("*.pxl"))) == 8, err
