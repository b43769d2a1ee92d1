"""deploy/rasa/entrypoint.sh, the Rasa image's start: the command it runs, and the tokens it refuses.
A stand-in `python` on PATH prints its arguments instead of starting Rasa."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from rasa.__main__ import create_argument_parser

ENTRYPOINT = Path(__file__).resolve().parents[2] / "deploy" / "rasa" / "entrypoint.sh"


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "python").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (fake / "python").chmod(0o755)
    # What the image sets: inside a container Rasa listens on every interface of its network.
    base = {"PATH": f"{fake}:/usr/bin:/bin", "RASA_HOST": "0.0.0.0", "RASA_PORT": "5005"}  # noqa: S104
    return subprocess.run(["sh", str(ENTRYPOINT), "--response-timeout", "3600"], env={**base, **env},
                          capture_output=True, text=True)  # fmt: skip


def test_it_starts_rasa_through_the_launcher_with_the_deployments_files_and_token(tmp_path):
    done = run(tmp_path, RASA_TOKEN="-starts-with-a-dash")
    assert done.returncode == 0, done.stderr
    arguments = done.stdout.splitlines()
    assert arguments[:2] == ["-m", "connectors.rasa_launcher"]
    parsed = create_argument_parser().parse_args(arguments[2:])
    assert parsed.auth_token == "-starts-with-a-dash" and parsed.enable_api
    assert (parsed.endpoints, parsed.credentials) == ("config/endpoints.yml", "config/credentials.yml")
    assert (parsed.interface, parsed.port, parsed.response_timeout) == ("0.0.0.0", 5005, 3600)  # noqa: S104


@pytest.mark.parametrize("token", [None, "", "UNSET", "rasaToken"])
def test_it_refuses_to_start_without_a_real_token(tmp_path, token):
    done = run(tmp_path, **({} if token is None else {"RASA_TOKEN": token}))
    assert done.returncode != 0 and done.stdout == ""
    assert "RASA_TOKEN" in done.stderr


def test_rasa_reads_the_deployments_endpoints_with_the_action_server_from_the_environment(monkeypatch):
    from rasa.core.utils import AvailableEndpoints

    monkeypatch.setenv("ACTION_SERVER_URL", "http://actions-lb:5055/webhook")
    monkeypatch.setenv("ACTION_SERVER_TOKEN", "actions-secret")
    endpoints = AvailableEndpoints.read_endpoints(str(ENTRYPOINT.parent / "endpoints.yml"))
    assert endpoints.action.url == "http://actions-lb:5055/webhook"
    assert endpoints.action.headers == {"Authorization": "Bearer actions-secret"}
    assert endpoints.tracker_store.type == "connectors.stores.SettingsTrackerStore"
    assert endpoints.lock_store.type == "connectors.stores.SettingsLockStore"
