"""docker-compose.yml, checked by reading it (Docker does not run on the development machines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from worker.queues import Queue

pytestmark = pytest.mark.pure

ROOT = Path(__file__).resolve().parents[1]
LONG_RUNNING = {"postgres", "redis", "worker", "worker-training", "worker-webhooks", "beat", "flower", "webhook-receiver"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _expand(value: str) -> str:
    """Compose's ${VAR:-default} with the defaults, as `docker compose config` would without a .env."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _env(service: dict) -> dict[str, str]:
    return {k: _expand(str(v)) for k, v in (service.get("environment") or {}).items()}


def _queues(command: list[str]) -> set[str]:
    return set(command[command.index("-Q") + 1].split(","))


def test_every_service_is_there_and_the_long_running_ones_have_healthchecks(compose):
    services = compose["services"]
    assert set(services) >= LONG_RUNNING | {"migrate"}
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:")


def test_migrate_runs_alembic_first_and_the_pipeline_waits_for_it(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["python", "-m", "worker", "migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("worker", "worker-training", "worker-webhooks", "beat", "flower"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy", name


def test_workers_consume_every_queue_and_use_the_celery_app(compose):
    services = compose["services"]
    workers = {n: s for n, s in services.items() if s.get("command", [None])[:4] == ["celery", "-A", "worker.celery_app", "worker"]}
    assert set(workers) == {"worker", "worker-training", "worker-webhooks"}
    consumed = set().union(*(_queues(s["command"]) for s in workers.values()))
    assert consumed == {q.value for q in Queue}
    assert _queues(workers["worker"]["command"]) == {Queue.RUNS.value, Queue.SCORING.value}
    assert workers["worker"]["deploy"]["replicas"] >= 2  # several workers share a run
    for s in workers.values():
        assert "--max-memory-per-child" in s["command"] or "webhooks" in _queues(s["command"])


def test_exactly_one_beat(compose):
    services = compose["services"]
    beats = [n for n, s in services.items() if "beat" in (s.get("command") or [])]
    assert beats == ["beat"]
    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["beat"]["command"][:4] == ["celery", "-A", "worker.celery_app", "beat"]


def test_flower_gets_basic_auth_from_settings_not_from_argv(compose):
    flower = compose["services"]["flower"]
    assert flower["command"][:4] == ["python", "-m", "worker", "flower"]
    assert not any("auth" in str(part) for part in flower["command"])
    env = _env(flower)
    assert env["RMSML_FLOWER__USER"] and env["RMSML_FLOWER__PASSWORD"]


def test_app_environment_is_valid_settings_pointing_at_the_compose_services(compose, monkeypatch):
    from worker.settings import Settings

    env = _env(compose["services"]["worker"])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert "@postgres:5432/rms_replica" in settings.replica.url.get_secret_value()
    assert "@postgres:5432/rms_ml" in settings.predictions.url.get_secret_value()
    assert settings.broker.url.get_secret_value().startswith("redis://redis:6379/")
    assert [r.url for r in settings.webhooks.all_receivers()] == ["http://webhook-receiver:8000/hooks/predictions"]
    init = (ROOT / "docker/postgres/init.sql").read_text()
    assert "CREATE DATABASE rms_replica" in init and "CREATE DATABASE rms_ml" in init
    receiver_env = _env(compose["services"]["webhook-receiver"])
    assert receiver_env["RMS_WEBHOOK_SECRET"] == settings.webhooks.secret.get_secret_value()


def test_build_files_exist_and_the_receiver_compiles(compose):
    build = compose["x-app"]["build"]
    dockerfile = ROOT / build["context"] / build["dockerfile"]
    text = dockerfile.read_text()
    assert text.startswith("#") and "FROM python:3.11" in text and "USER " in text
    assert compose["services"]["webhook-receiver"]["command"] == [
        "python", "-m", "webhooks.receiver", "--port", "8000"]
