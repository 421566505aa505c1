"""What ships for deployment agrees with itself: the worker image's torch satisfies the declared
ranges, workers run unprivileged with a health check, compose holds no password, remote control is
off, and credentials never reach a message."""

import re
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from cascade.router.redact import redact, redact_url

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "docker" / "worker.Dockerfile").read_text()
COMPOSE = (ROOT / "docker" / "compose.yaml").read_text()


def declared(name: str) -> SpecifierSet:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["models"]
    (requirement,) = [r for r in extras if re.match(rf"{name}\b", r)]
    return SpecifierSet(requirement[len(name):])


def test_the_worker_image_torch_satisfies_the_declared_ranges():
    tag = re.search(r"^FROM pytorch/pytorch:(\d+\.\d+\.\d+)-", DOCKERFILE, re.M)
    assert tag, "the worker image is based on an official PyTorch image"
    torch = Version(tag.group(1))
    assert torch in declared("torch")
    transformers_floor = min(Version(s.version) for s in declared("transformers") if s.operator == ">=")
    if transformers_floor.major >= 5:
        assert torch >= Version("2.6"), "transformers 5 disables torch below 2.6"


def test_workers_run_unprivileged_with_a_health_check():
    assert re.search(r"^USER (?!root)\S+", DOCKERFILE, re.M)
    assert re.search(r"^HEALTHCHECK .*cascade\", \"health\"", DOCKERFILE, re.M | re.S)


def test_compose_takes_every_password_from_the_environment():
    assert "requirepass" in COMPOSE
    for line in COMPOSE.splitlines():
        if "PASSWORD:" in line and not line.strip().startswith("#"):
            assert "${" in line, line
    assert not re.search(r"://[^:/\s]+:(?!\$\{)[^@\s]+@", COMPOSE), "a URL in compose carries a literal password"


def test_celery_remote_control_is_off_unless_asked_for(monkeypatch):
    from cascade.workers.runtime.app import create_app
    from cascade.workers.runtime.settings import resolve

    monkeypatch.setenv("CASCADE_BROKER_URL", "memory://")
    assert create_app(resolve("tiny")).conf.worker_enable_remote_control is False
    monkeypatch.setenv("CASCADE_REMOTE_CONTROL", "1")
    assert create_app(resolve("tiny")).conf.worker_enable_remote_control is True


def test_credentials_are_stripped_from_urls_in_messages():
    assert redact_url("https://user:s3cret@api.example.com/v1") == "https://***@api.example.com/v1"
    assert redact_url("redis://:pw@127.0.0.1:6379/0") == "redis://***@127.0.0.1:6379/0"
    assert redact_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"
    message = "cannot reach postgresql://cascade:hunter2@db:5432/cascade and amqp://guest:guest@mq//"
    assert "hunter2" not in redact(message) and "guest:guest" not in redact(message)


def test_the_api_service_is_in_compose_with_a_health_check_and_no_model_libraries():
    api = COMPOSE.split("\n  api:\n", 1)[1].split("\nvolumes:", 1)[0]
    assert "dockerfile: docker/api.Dockerfile" in api and "/readyz" in api and "healthcheck:" in api
    assert "127.0.0.1:${CASCADE_API_PORT:-8000}:8000" in api  # published on loopback unless the operator says otherwise
    image = (ROOT / "docker" / "api.Dockerfile").read_text()
    assert 'pip install ".[api]"' in image and "torch" not in image.lower().split("no torch")[1]
    assert "USER cascade" in image and "HEALTHCHECK" in image
