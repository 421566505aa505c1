"""The built wheel in a fresh virtual environment, imported by an application that has its own
`storage.py` and `router.py`: the installed names live under `cascade`, so nothing collides."""

import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

APPLICATION = """
import json, sys

import router
import storage
from cascade.workers.client import Cascade

import cascade.workers.client as client_module

assert storage.OWNER == "application" and router.OWNER == "application"
cascade = Cascade("tiny", broker_url=sys.argv[1], database_url=sys.argv[2])
job_id = cascade.submit("Whose storage module is this?", ["the application's", "the cascade's"], external_id=sys.argv[3])
print(json.dumps({"job_id": job_id, "client": client_module.__file__}))
"""


@pytest.mark.slow
def test_an_application_with_its_own_storage_and_router_modules_submits_through_the_wheel(tmp_path, redis_url, database_url):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "router", "storage", "workers", "migrations"):
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / part, source / part)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = wheels.glob("cascade-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # The project's dependencies come from the test environment (a plain path: its editable install
    # of this checkout is not activated); the project itself only from the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True)

    app = tmp_path / "app"
    app.mkdir()
    (app / "storage.py").write_text('OWNER = "application"\n')
    (app / "router.py").write_text('OWNER = "application"\n')
    (app / "main.py").write_text(textwrap.dedent(APPLICATION))
    external_id = f"collision-{uuid.uuid4().hex[:8]}"
    done = subprocess.run([python, "main.py", redis_url, database_url, external_id], cwd=app, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert Path(out["client"]).is_relative_to(site), out["client"]  # the wheel's copy, not this checkout

    from cascade.storage.engine import session_scope
    from cascade.storage.repository import find_job

    with session_scope(database_url) as session:
        job = find_job(session, external_id)
        assert job is not None and str(job.id) == out["job_id"] and job.pending_tier == "small"
