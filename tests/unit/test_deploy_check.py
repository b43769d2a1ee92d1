"""scripts/deploy_check.py: deploy/ passes, and each rule fails on a copy of deploy/ broken in one place."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))  # as `python scripts/stack.py` has it

import deploy_check  # noqa: E402


@pytest.fixture
def deploy(tmp_path) -> Path:
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    return copy


def problems(deploy: Path) -> list[str]:
    return deploy_check.problems_in(deploy)[0]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_the_repositorys_deploy_folder_passes():
    found, notes = deploy_check.problems_in()
    assert found == []
    assert "4 Dockerfiles" in notes


def test_make_deploy_check_exits_0_on_the_repository():
    done = subprocess.run([sys.executable, str(SCRIPTS / "deploy_check.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "deploy/ passes" in done.stdout


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("FROM python:3.10.13-slim-bookworm", "FROM python:latest", "is not pinned"),
        ("FROM python:3.10.13-slim-bookworm", "FROM python:3.10-slim", "is not pinned"),
        ("FROM python:3.10.13-slim-bookworm", "FROM python", "is not pinned"),
        ("USER 10001:10001", "USER root", "non-zero numeric uid"),
        ("USER 10001:10001", "USER 0", "non-zero numeric uid"),
        ("USER 10001:10001\n", "", "no USER"),
        (
            'ENTRYPOINT ["python", "-m", "connectors.action_server"]',
            "ENTRYPOINT python -m connectors.action_server",
            "exec form",
        ),
        ("COPY kb/ kb/", "ADD kb/ kb/", "use COPY"),
        ("COPY kb/ kb/", "COPY knowledge/ kb/", "names nothing"),
        ("pip install --no-cache-dir -r", "pip install -r", "--no-cache-dir"),
        (
            "    ACTION_PORT=5055 \\",
            "    ACTION_PORT=5055 \\\n    ACTION_SERVER_TOKEN=abc \\",
            "bakes a secret",
        ),
    ],
)
def test_each_dockerfile_rule_is_enforced(deploy, old, new, expected):
    edit(deploy / "docker" / "actions.Dockerfile", old, new)
    assert any("actions.Dockerfile" in problem and expected in problem for problem in problems(deploy))


def test_a_dockerfile_without_healthcheck_or_dockerignore_is_refused(deploy):
    dockerfile = deploy / "docker" / "console.Dockerfile"
    text = dockerfile.read_text()
    start = text.index("HEALTHCHECK")
    dockerfile.write_text(text[:start] + text[text.index("ENTRYPOINT") :])
    (deploy / "docker" / "console.Dockerfile.dockerignore").unlink()
    found = problems(deploy)
    assert any("console.Dockerfile: no HEALTHCHECK" in problem for problem in found)
    assert any("console.Dockerfile: no console.Dockerfile.dockerignore" in problem for problem in found)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            '    healthcheck:\n      test: ["CMD", "pg_isready"',
            '    healtcheck:\n      test: ["CMD", "pg_isready"',
            "postgres",
        ),
        ("image: postgres:16.4-bookworm", "image: postgres:latest", "not pinned"),
        ("image: redis:7.2.5-bookworm", "image: redis", "not pinned"),
        ('"127.0.0.1:${CONSOLE_PUBLISHED_PORT:-8080}:8080"', '"8080:8080"', "beyond the host's loopback"),
        (
            "      RASA_URL: http://haproxy:5005",
            "      RASA_URL: http://haproxy:5005\n      RASA_TOKEN: x",
            "a door of the Rasa server",
        ),
        (
            "      haproxy:\n        condition: service_healthy",
            "      lb:\n        condition: service_healthy",
            "not a service",
        ),
        (
            "dockerfile: deploy/docker/console.Dockerfile",
            "dockerfile: deploy/docker/gui.Dockerfile",
            "does not exist",
        ),
        (
            "  stop_grace_period: 30s",
            "  stop_grace_period: 30s\n  restart_policy: always",
            "does not match any of the regexes",
        ),
    ],
)
def test_each_compose_rule_is_enforced(deploy, old, new, expected):
    edit(deploy / "compose" / "docker-compose.yml", old, new)
    assert any("docker-compose.yml" in problem and expected in problem for problem in problems(deploy))


def test_a_service_without_any_health_check_is_refused(deploy):
    compose = deploy / "compose" / "docker-compose.yml"
    text = compose.read_text()
    start = text.index('    healthcheck:\n      test: ["CMD", "bash"')
    end = text.index("    networks: [internal]", start)
    compose.write_text(text[:start] + text[end:])
    assert any("haproxy: no health check" in problem for problem in problems(deploy))


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("console.yaml", "          readinessProbe:", "          readinesProbe:", "readinesProbe"),
        ("console.yaml", "  replicas: 2\n", "  replicas: two\n", "'two' is not of type"),
        ("outbox-worker.yaml", "          readinessProbe:", "          startupProbe:", "no readinessProbe"),
        (
            "outbox-worker.yaml",
            "              memory: 512Mi\n",
            "              cpu: 500m\n",
            "no memory limit",
        ),
        ("console.yaml", "        runAsNonRoot: true\n", "", "runAsNonRoot"),
        (
            "console.yaml",
            "    name: autoservicio-console\n  minReplicas",
            "    name: console\n  minReplicas",
            "not a Deployment",
        ),
        ("outbox-worker.yaml", "autoservicio-worker:0.1.0", "autoservicio-worker:latest", "not pinned"),
        ("config.yaml", "kind: ConfigMap", "kind: ConfigMapp", "no schema"),
    ],
)
def test_each_kubernetes_rule_is_enforced(deploy, file, old, new, expected):
    edit(deploy / "k8s" / file, old, new)
    assert any(file in problem and expected in problem for problem in problems(deploy))


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "rasa-values.yaml",
            "replicaCount: 2",
            "replicasCount: 2",
            "replicasCount is not a value of chart rasa",
        ),
        (
            "rasa-values.yaml",
            "  trainInitialModel: false",
            "  trainModel: false",
            "applicationSettings.trainModel",
        ),
        ("rasa-action-server-values.yaml", "  port: 5055", "  ports: 5055", "applicationSettings.ports"),
    ],
)
def test_a_helm_value_the_chart_does_not_have_is_refused(deploy, file, old, new, expected):
    edit(deploy / "helm" / file, old, new)
    assert any(file in problem and expected in problem for problem in problems(deploy))


def test_the_rasa_servers_door_tokens_reach_no_other_process(deploy):
    edit(
        deploy / "k8s" / "outbox-worker.yaml",
        "            - name: OUTBOX_WORKER_PORT",
        "            - name: RASA_TOKEN\n              value: x\n            - name: OUTBOX_WORKER_PORT",
    )
    edit(
        deploy / "helm" / "rasa-action-server-values.yaml",
        "  - name: ACTION_HOST",
        "  - name: CONSOLE_RASA_TOKEN\n    value: x\n  - name: ACTION_HOST",
    )
    found = problems(deploy)
    assert any("outbox-worker.yaml" in problem and "RASA_TOKEN, a door" in problem for problem in found)
    assert any(
        "rasa-action-server-values.yaml" in problem and "CONSOLE_RASA_TOKEN" in problem for problem in found
    )


def test_free_form_chart_values_take_any_key():
    theirs = {"resources": {}, "extraEnv": [], "image": {"tag": "1"}}
    ours = {
        "resources": {"requests": {"cpu": "1"}},
        "extraEnv": [{"name": "A"}],
        "image": {"tag": "2", "x": 1},
    }
    assert list(deploy_check.unknown_keys(ours, theirs)) == ["image.x"]
