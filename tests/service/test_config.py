"""The config file: a real server takes its settings from it, under the environment variables
(which come first), and ``salience config`` says where each setting came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.service.helpers import problem
from tests.service.server import ROOT, running_server

TEXT = "<rule>Be brief.</rule> " + "token " * 100  # about 100 tokens


def test_the_server_reads_the_config_file_under_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "salience.toml"
    # the file sets two limits; the environment sets one of them again (8: it wins)
    config.write_text("max_batch_tokens = 250\nmax_batch_size = 2\n", encoding="utf-8")
    with (
        running_server(SALIENCE_CONFIG=str(config)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        three = {"requests": [{"text": TEXT}] * 3}  # 3 > the file's 2, <= the environment's 8
        found = problem(client.post("/annotate/batch", json=three), 422, "batch-too-large")
        assert found["limit"] == 250 and "tokens" in found["detail"]  # the file's token limit
        two = {"requests": [{"text": TEXT}] * 2}
        assert client.post("/annotate/batch", json=two).status_code == 200


def test_config_says_where_each_setting_came_from(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.salience]\nport = 9100\nworkers = 3\n', encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALIENCE_")}
    env["SALIENCE_WORKERS"] = "2"

    def config(*args: str, folder: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "salience", "config", *args],
            cwd=folder, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip

    done = config("--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["config_file"] == {
        "path": str(tmp_path / "pyproject.toml"),
        "table": "tool.salience",
    }
    by = {s["name"]: s for s in data["settings"]}
    assert (by["port"]["value"], by["port"]["source"]) == (
        9100,
        f"{tmp_path / 'pyproject.toml'} [tool.salience]",
    )
    assert (by["workers"]["value"], by["workers"]["source"]) == (2, "env SALIENCE_WORKERS")
    assert (by["host"]["value"], by["host"]["source"]) == ("127.0.0.1", "default")
    # salience.toml comes before pyproject.toml, and names only settings there are
    (tmp_path / "salience.toml").write_text("prot = 9200\n", encoding="utf-8")
    wrong = config()
    assert wrong.returncode == 1 and "no setting named prot" in wrong.stderr
    (tmp_path / "salience.toml").write_text("port = 9200\n", encoding="utf-8")
    text = config("--changed")
    assert text.returncode == 0
    assert text.stdout.splitlines() == [
        f"port    = 9200  # {tmp_path / 'salience.toml'}",
        "workers = 2  # env SALIENCE_WORKERS",
    ]
