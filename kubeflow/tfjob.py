"""A TFJob (Kubeflow training operator) for one Trainer execution, for Kubeflow without Vertex.

Every replica runs TFX's executor entry point with the taxonomy-aware trainer executor;
the operator sets TF_CONFIG, so run_fn trains with MultiWorkerMirroredStrategy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from kubeflow.settings import KubeflowSettings

TFJOB_TEMPLATE = Path(__file__).resolve().parent / "tfjob.yaml"


def tfjob_manifest(
    settings: KubeflowSettings,
    inputs: str,
    outputs: str,
    exec_properties: str,
    name: str = "categorize-trainer",
    namespace: Optional[str] = None,
) -> dict:
    """The TFJob of kubeflow/tfjob.yaml for one Trainer execution.

    `inputs`, `outputs` and `exec_properties` are the JSON strings that the Trainer step
    logs ("Inputs for Executor is: ..."); every replica runs
    `python -m tfx.scripts.run_executor` with the taxonomy-aware trainer executor on them.
    Chief: 1 replica, Worker: N-1; the training operator sets TF_CONFIG.
    """
    import yaml

    manifest = yaml.safe_load(TFJOB_TEMPLATE.read_text())
    manifest["metadata"]["name"] = name
    if namespace:
        manifest["metadata"]["namespace"] = namespace
    specs = manifest["spec"]["tfReplicaSpecs"]
    values = {"TFX_INPUTS": inputs, "TFX_OUTPUTS": outputs, "TFX_EXEC_PROPERTIES": exec_properties}
    for role, replicas in (("Chief", 1), ("Worker", settings.train_workers - 1)):
        if replicas < 1:
            specs.pop(role, None)
            continue
        specs[role]["replicas"] = replicas
        for container in specs[role]["template"]["spec"]["containers"]:
            container["image"] = settings.image
            for env in container.get("env", []):
                if env["name"] in values:
                    env["value"] = values[env["name"]]
    return manifest
