#!/usr/bin/env python3
"""Checks rendered Helm manifests: every object a hook's pod names exists before the hook runs.

Helm creates a release's hooks of one phase (e.g. pre-install) in the order of their
weights, and its ordinary objects only after every pre-install hook has succeeded. So a
pre-install hook that names an ordinary object of the chart (its ServiceAccount, a
ConfigMap, a Secret, a claim) is refused by Kubernetes on the first install, while every
upgrade works because the object exists by then. An object the chart does not render
(the namespace's `default` ServiceAccount, a Secret that must exist beforehand) is the
installer's to provide and is not checked.

    python3 tests/chart/hooks.py RENDERED.yaml...

Prints one line per finding and exits 1 when there is any; 0 and one summary line else.
"""

import sys

import yaml


def hook_phases(obj):
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    hooks = annotations.get("helm.sh/hook", "")
    weight = int(annotations.get("helm.sh/hook-weight", "0"))
    return {h.strip() for h in hooks.split(",") if h.strip()}, weight


def pod_spec(obj):
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def references(spec):
    """(kind, name) of every object the pod spec names."""
    found = []
    if spec.get("serviceAccountName"):
        found.append(("ServiceAccount", spec["serviceAccountName"]))
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            found.append(("ConfigMap", volume["configMap"].get("name")))
        if "secret" in volume:
            found.append(("Secret", volume["secret"].get("secretName")))
        if "persistentVolumeClaim" in volume:
            found.append(("PersistentVolumeClaim", volume["persistentVolumeClaim"].get("claimName")))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                found.append(("ConfigMap", source["configMap"].get("name")))
            if "secret" in source:
                found.append(("Secret", source["secret"].get("name")))
    for pull in spec.get("imagePullSecrets") or []:
        found.append(("Secret", pull.get("name")))
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                found.append(("ConfigMap", source["configMapKeyRef"].get("name")))
            if "secretKeyRef" in source:
                found.append(("Secret", source["secretKeyRef"].get("name")))
        for env_from in container.get("envFrom") or []:
            if "configMapRef" in env_from:
                found.append(("ConfigMap", env_from["configMapRef"].get("name")))
            if "secretRef" in env_from:
                found.append(("Secret", env_from["secretRef"].get("name")))
    return found


def check(documents):
    rendered = {}
    for obj in documents:
        name = (obj.get("metadata") or {}).get("name")
        rendered[(obj.get("kind"), name)] = obj
    findings, hooks = [], 0
    for obj in documents:
        phases, weight = hook_phases(obj)
        # On an upgrade the release's objects exist already, from the release before.
        install_phases = phases & {"pre-install"}
        if not install_phases or not pod_spec(obj):
            continue
        hooks += 1
        what = f"{obj['kind']} {obj['metadata']['name']} ({', '.join(sorted(phases))})"
        for kind, name in references(pod_spec(obj)):
            target = rendered.get((kind, name))
            if target is None:
                continue  # not the chart's: must exist before the release
            target_phases, target_weight = hook_phases(target)
            for phase in sorted(install_phases):
                if phase not in target_phases:
                    findings.append(
                        f"{what} names {kind} {name}, which the chart creates only after "
                        f"its {phase} hooks: Kubernetes refuses the hook's pod"
                    )
                elif target_weight >= weight and target is not obj:
                    findings.append(
                        f"{what} names {kind} {name}, a {phase} hook of weight "
                        f"{target_weight}, not created before it (weight {weight})"
                    )
    return findings, hooks


def main(paths):
    if not paths:
        print(__doc__.strip().splitlines()[-3].strip(), file=sys.stderr)
        return 2
    failed = False
    for path in paths:
        with open(path, encoding="utf-8") as f:
            documents = [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]
        findings, hooks = check(documents)
        for finding in findings:
            print(f"{path}: {finding}", file=sys.stderr)
        failed = failed or bool(findings)
        if not findings:
            print(f"hooks: OK {path} ({hooks} pre-install hook(s), every object they name exists first)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
