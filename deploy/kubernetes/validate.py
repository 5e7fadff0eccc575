#!/usr/bin/env python3
"""Render every kustomization of deploy/kubernetes and validate the result, offline.

    python3 deploy/kubernetes/validate.py        # scripts/test runs it

Every directory below deploy/kubernetes with a kustomization.yaml is rendered with
`kubectl kustomize` (a kustomize Component only through the overlays that include it), and
every object of every render is checked:

- Kubernetes kinds against the JSON schemas that PyPI's kubernetes-validate ships, strictly
  (an unknown field is an error, as `kubectl apply --validate=strict` makes it), for each
  version in KUBERNETES_VERSIONS;
- KEDA's ScaledObject against the openAPIV3Schema of KEDA's own CRD (schemas/, vendored from
  a KEDA release), made strict the same way, plus the CRD's CEL rule (min <= max replicas)
  and, for each redis*-streams trigger, its metadata against the keys KEDA's scaler reads;
- a kind that neither knows is an error;
- the objects agree with each other: one namespace for all namespaced objects, every
  ConfigMap a pod uses is in the render (kustomize adds a hash to generated names), every
  Secret reference is optional (no Secret is rendered: the user creates it), and each
  autoscaler's target exists.

Exit status 0 when everything passed, 1 otherwise (every problem is listed), 2 when a tool is
missing.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# The oldest Kubernetes the manifests are meant for (PodDisruptionBudget
# unhealthyPodEvictionPolicy is on by default from 1.27 and GA in 1.31) and the version of
# the kubectl that renders them here. kubernetes-validate ships the schemas of 1.25 to 1.37.
KUBERNETES_VERSIONS = ("1.29.0", "1.32.0")

KEDA_CRD = os.path.join(HERE, "schemas", "keda.sh_scaledobjects.yaml")
KEDA_VERSION = "v2.20.2"

# Kinds without a namespace (only these are used here).
CLUSTER_SCOPED = {"Namespace"}

# What KEDA's Redis Streams scalers read (pkg/scalers/redis_streams_scaler.go and the
# connection settings of redis_scaler.go, KEDA v2.20.2; keda.sh/docs/latest/scalers/
# redis-streams, redis-cluster-streams, redis-sentinel-streams).
KEDA_STREAM_TRIGGERS = {"redis-streams", "redis-cluster-streams", "redis-sentinel-streams"}
KEDA_METADATA = {
    "address", "addresses", "host", "hosts", "port", "ports",
    "username", "password", "sentinelUsername", "sentinelPassword", "sentinelMaster",
    "stream", "consumerGroup", "lagCount", "pendingEntriesCount", "streamLength",
    "activationLagCount", "databaseIndex", "enableTLS", "unsafeSsl",
}
# Keys that may also be given as <key>FromEnv (read from the scale target's container env).
KEDA_FROM_ENV = {
    "address", "addresses", "host", "hosts", "port", "ports",
    "username", "password", "sentinelUsername", "sentinelPassword", "sentinelMaster",
}
KEDA_INTEGERS = {"lagCount", "pendingEntriesCount", "streamLength", "activationLagCount",
                 "databaseIndex"}
KEDA_BOOLEANS = {"enableTLS", "unsafeSsl"}


def fail_tool(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


try:
    import yaml
    import jsonschema
    import kubernetes_validate.utils as kv
except ImportError as error:
    fail_tool(f"{error}: install PyPI's kubernetes-validate (scripts/test does, as root: "
              "python3 -m pip install kubernetes-validate)")

# kubernetes-validate reads a schema file, and its large _definitions.json, on every call;
# they never change during a run.
_schema_contents = kv.schema_contents
_schema_cache = {}


def _cached_schema_contents(filename, desired_version):
    if filename not in _schema_cache:
        _schema_cache[filename] = _schema_contents(filename, desired_version)
    return _schema_cache[filename]


kv.schema_contents = _cached_schema_contents


def kubectl_version():
    """kubectl's and its embedded kustomize's versions; exits when kubectl is unusable."""
    try:
        out = subprocess.run(["kubectl", "version", "--client", "-o", "json"],
                             capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        fail_tool("kubectl is not installed; it renders the manifests (`kubectl kustomize`, "
                  "no cluster needed): apt-get install kubernetes-client, or run "
                  "scripts/test as root, which installs it")
    except subprocess.CalledProcessError as error:
        fail_tool(f"kubectl version failed: {error.stderr.strip()}")
    info = json.loads(out)
    version = info.get("clientVersion", {})
    client = version.get("gitVersion", "?")
    # kubectl reports its kustomize from 1.24 on; 1.21 to 1.23 embed kustomize v4.
    kustomize = info.get("kustomizeVersion", "")
    major = kustomize.lstrip("v").split(".")[0]
    minor = "".join(c for c in version.get("minor", "") if c.isdigit())
    if major.isdigit():
        recent = int(major) >= 4
    else:
        recent = version.get("major") == "1" and minor.isdigit() and int(minor) >= 21
    if not recent:
        fail_tool(f"kubectl {client} embeds kustomize {kustomize or '(unknown)'}; the "
                  "manifests use kustomize Components and `patches`, which need kustomize "
                  "v4 or later (kubectl 1.21 or later)")
    return client, kustomize


def kustomizations():
    """Directories to render: every kustomization that is not a Component."""
    found = []
    for root, dirs, files in os.walk(HERE):
        dirs.sort()
        if "kustomization.yaml" not in files:
            continue
        with open(os.path.join(root, "kustomization.yaml")) as f:
            kind = (yaml.safe_load(f) or {}).get("kind", "Kustomization")
        if kind != "Component":
            found.append(root)
    return found


def render(directory):
    """The objects `kubectl kustomize DIRECTORY` renders, or an error message."""
    proc = subprocess.run(["kubectl", "kustomize", directory], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"kubectl kustomize failed:\n{proc.stderr.strip()}"
    if proc.stderr.strip():
        print(f"  warning from kubectl kustomize: {proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc], None


def strict(schema):
    """The schema with `additionalProperties: false` on every object that lists its
    properties and does not keep unknown fields, as the API server's strict field
    validation treats a CRD's structural schema."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def keda_schema():
    with open(KEDA_CRD) as f:
        crd = next(doc for doc in yaml.safe_load_all(f) if doc)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return strict(version["schema"]["openAPIV3Schema"])


def name_of(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def check_kubernetes(obj, errors):
    for version in KUBERNETES_VERSIONS:
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as error:
            path = ".".join(str(p) for p in error.path) or "(top)"
            errors.append(f"{name_of(obj)}: Kubernetes {error.version}: {path}: {error.message}")
        except kv.VersionNotSupportedError:
            fail_tool(f"this kubernetes-validate ships no Kubernetes {version} schemas; "
                      "install the version scripts/test names (kubernetes-validate==1.37.0)")
        except kv.SchemaNotFoundError:
            errors.append(f"{name_of(obj)}: no Kubernetes {version} schema for "
                          f"{obj.get('apiVersion')} {obj.get('kind')}")
            return


def check_keda_trigger(where, trigger, errors):
    kind = trigger.get("type")
    if kind not in KEDA_STREAM_TRIGGERS:
        errors.append(f"{where}: trigger type {kind!r}: only {sorted(KEDA_STREAM_TRIGGERS)} "
                      "are checked here")
        return
    meta = trigger.get("metadata", {})
    for key in meta:
        base = key[: -len("FromEnv")] if key.endswith("FromEnv") else None
        if key not in KEDA_METADATA and base not in KEDA_FROM_ENV:
            errors.append(f"{where}: {kind} reads no metadata key {key!r}")

    def given(*keys):
        return any(k in meta or f"{k}FromEnv" in meta for k in keys)

    if "stream" not in meta:
        errors.append(f"{where}: {kind} needs `stream`")
    if not given("address", "addresses") and not given("host", "hosts"):
        errors.append(f"{where}: {kind} needs `address`/`addresses` or `host`/`hosts`")
    for key in ("address", "addresses"):
        for address in filter(None, str(meta.get(key, "")).split(",")):
            host, _, port = address.strip().rpartition(":")
            if not host or not port.isdigit():
                errors.append(f"{where}: {key} {address!r} is not HOST:PORT")
    if kind == "redis-sentinel-streams" and not given("sentinelMaster"):
        errors.append(f"{where}: {kind} needs `sentinelMaster`")
    if kind != "redis-sentinel-streams" and given("sentinelMaster"):
        errors.append(f"{where}: `sentinelMaster` belongs to redis-sentinel-streams")
    # redline scales on the group's lag: consumerGroup + lagCount select KEDA's lag mode.
    if "consumerGroup" not in meta or "lagCount" not in meta:
        errors.append(f"{where}: scale on the group's lag: set `consumerGroup` and `lagCount`")
    for key in KEDA_INTEGERS & meta.keys():
        value = str(meta[key])
        if not value.isdigit() or (key == "lagCount" and int(value) < 1):
            errors.append(f"{where}: {key} {value!r} is not a positive integer")
    for key in KEDA_BOOLEANS & meta.keys():
        if str(meta[key]).lower() not in ("true", "false"):
            errors.append(f"{where}: {key} {meta[key]!r} is not true or false")


def check_keda(obj, schema, errors):
    where = name_of(obj)
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.path)):
        path = ".".join(str(p) for p in error.path) or "(top)"
        errors.append(f"{where}: KEDA {KEDA_VERSION} CRD: {path}: {error.message}")
    spec = obj.get("spec", {})
    low, high = spec.get("minReplicaCount"), spec.get("maxReplicaCount", 100)
    if low is not None and low > high:
        errors.append(f"{where}: minReplicaCount must be less than or equal to maxReplicaCount")
    for i, trigger in enumerate(spec.get("triggers", [])):
        if isinstance(trigger, dict):
            check_keda_trigger(f"{where} trigger {i}", trigger, errors)


def pod_spec(obj):
    if obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj.get("spec", {}).get("template", {}).get("spec", {})
    return None


def check_references(objects, errors):
    """Names that objects of one render use must exist in it (or be optional Secrets)."""
    namespaces = {o["metadata"].get("namespace") for o in objects
                  if o.get("kind") not in CLUSTER_SCOPED}
    if len(namespaces) != 1 or None in namespaces:
        errors.append(f"namespaced objects must share one namespace; found {namespaces}")
    config_maps = {o["metadata"]["name"] for o in objects if o.get("kind") == "ConfigMap"}
    workloads = {(o["kind"], o["metadata"]["name"]) for o in objects if pod_spec(o) is not None}
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        where = name_of(obj)
        used, secrets = [], []
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                used.append(volume["configMap"])
            if "secret" in volume:
                secrets.append(volume["secret"])
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    used.append(source["configMapRef"])
                if "secretRef" in source:
                    secrets.append(source["secretRef"])
            for var in container.get("env", []):
                ref = var.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    used.append(ref["configMapKeyRef"])
                if "secretKeyRef" in ref:
                    secrets.append(ref["secretKeyRef"])
        for ref in used:
            name = ref.get("name") or ref.get("secretName")
            if name not in config_maps and not ref.get("optional"):
                errors.append(f"{where}: uses ConfigMap {name}, which the render lacks")
        for ref in secrets:
            if not ref.get("optional"):
                errors.append(f"{where}: Secret {ref.get('name') or ref.get('secretName')} "
                              "must be referenced with `optional: true` (no Secret is "
                              "rendered; the user creates it)")
    for obj in objects:
        if obj.get("kind") not in ("HorizontalPodAutoscaler", "ScaledObject"):
            continue
        target = obj.get("spec", {}).get("scaleTargetRef", {})
        key = (target.get("kind", "Deployment"), target.get("name"))
        if key not in workloads:
            errors.append(f"{name_of(obj)}: scales {key[0]}/{key[1]}, which the render lacks")


def main():
    client, kustomize = kubectl_version()
    schema = keda_schema()
    dirs = kustomizations()
    failed = False
    for directory in dirs:
        label = os.path.relpath(directory, HERE)
        objects, error = render(directory)
        errors = [error] if error else []
        for obj in objects or []:
            if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
                errors.append(f"not a Kubernetes object: {str(obj)[:80]}")
            elif obj["apiVersion"].startswith("keda.sh/"):
                if obj["kind"] == "ScaledObject" and obj["apiVersion"] == "keda.sh/v1alpha1":
                    check_keda(obj, schema, errors)
                else:
                    errors.append(f"{name_of(obj)}: no KEDA schema here for "
                                  f"{obj['apiVersion']} {obj['kind']}")
            else:
                check_kubernetes(obj, errors)
        if objects and not errors:
            check_references(objects, errors)
        if errors:
            failed = True
            print(f"FAIL {label}")
            for line in errors:
                print(f"  {line}")
        else:
            kinds = sorted({o["kind"] for o in objects})
            print(f"ok   {label}: {len(objects)} objects ({', '.join(kinds)})")
    versions = ", ".join(v.rsplit(".", 1)[0] for v in KUBERNETES_VERSIONS)
    print(f"{len(dirs)} kustomizations rendered by kubectl {client} (kustomize {kustomize}); "
          f"validated strictly against Kubernetes {versions} (kubernetes-validate) and "
          f"KEDA {KEDA_VERSION}'s ScaledObject CRD")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
