"""The baked Kubernetes manifests (deploy/kubernetes/), checked without a cluster: kustomize
renders every overlay, kubernetes-validate checks each object against the Kubernetes schemas in
strict mode (no unknown fields), KEDA's ScaledObject is checked against KEDA's own CRD schema
(tests/schemas/), and the properties the workloads must keep are asserted one by one."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .conftest import QUEUE_COMBINATIONS, TEMPLATE_ROOT

pytestmark = pytest.mark.parametrize("combination", QUEUE_COMBINATIONS, ids=lambda c: c.id)

KUBERNETES = Path("deploy/kubernetes")
# The oldest Kubernetes the manifests are meant for, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
KEDA_CRD = TEMPLATE_ROOT / "tests/schemas/keda.sh_scaledobjects-v2.20.2.yaml"


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize folder` renders."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed (Debian's kubectl package; .ci/run installs it)"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in objects if item["kind"] == kind}


def keda_schema() -> dict[str, Any]:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return strict(version["schema"]["openAPIV3Schema"])


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields refused, as `kubectl apply --validate=strict` refuses them
    (a CRD's schema leaves them to the API server, which would drop a misspelt field silently)."""
    schema = {
        key: strict(value) if isinstance(value, dict) and key != "properties" else value
        for key, value in schema.items()
    }
    if "properties" in schema:
        schema["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
    return schema


def validate(objects: list[dict[str, Any]]) -> None:
    for item in objects:
        if item["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(item, keda_schema())
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(item, version, strict=True)


def overlay(project: Path, name: str) -> list[dict[str, Any]]:
    return kustomize(project / KUBERNETES / "overlays" / name)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def config_of(objects: list[dict[str, Any]]) -> dict[str, str]:
    [config] = by_kind(objects, "ConfigMap").values()
    return config["data"]


def test_every_overlay_renders_and_every_object_is_valid(project: Path) -> None:
    for name in ("dev", "prod"):
        objects = overlay(project, name)
        assert objects
        validate(objects)


def test_the_hpa_on_cpu_alternative_renders_and_is_valid(project: Path, tmp_path: Path) -> None:
    # prod with the other component, as docs/deployment.md tells a cluster without KEDA.
    prod = project / KUBERNETES / "overlays/prod/kustomization.yaml"
    without_keda = tmp_path / "prod-hpa"
    shutil.copytree(project / KUBERNETES, without_keda / KUBERNETES)
    kustomization = without_keda / KUBERNETES / "overlays/prod/kustomization.yaml"
    text = prod.read_text().replace("- ../../components/keda", "- ../../components/hpa-cpu")
    kustomization.write_text(text)

    objects = kustomize(kustomization.parent)
    validate(objects)
    [hpa] = by_kind(objects, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"].endswith("-worker")
    assert not by_kind(objects, "ScaledObject")


def test_workers_run_the_image_unprivileged_and_stop_within_their_grace(project: Path) -> None:
    objects = overlay(project, "prod")
    [worker] = [d for name, d in by_kind(objects, "Deployment").items() if name.endswith("-worker")]
    pod = worker["spec"]["template"]["spec"]
    worker_container = container(worker)
    dockerfile = (project / "Dockerfile").read_text()

    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert user, "the Dockerfile's USER must be numeric"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))
    assert worker_container["securityContext"]["readOnlyRootFilesystem"] is True
    assert worker_container["securityContext"]["allowPrivilegeEscalation"] is False
    assert worker_container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert worker_container["image"].startswith("registry.example.com/")
    assert worker_container["resources"]["requests"]
    assert worker_container["resources"]["limits"]["memory"]

    # The same command as the image's default and compose's worker.
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    assert worker_container["command"] == compose["services"]["worker"]["command"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert worker_container[probe]["exec"]["command"][-2:] == ["worker-check", "--this-host"]

    grace = int(config_of(objects)["WORKER_SHUTDOWN_GRACE"])
    assert pod["terminationGracePeriodSeconds"] > grace + 5  # the grace, then cancel and close
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    labels = worker["spec"]["selector"]["matchLabels"]
    assert labels.items() <= worker["spec"]["template"]["metadata"]["labels"].items()
    spread = pod["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(c["labelSelector"]["matchLabels"] == labels for c in spread)
    [budget] = [
        b for n, b in by_kind(objects, "PodDisruptionBudget").items() if n.endswith("-worker")
    ]
    assert budget["spec"]["selector"]["matchLabels"] == labels


def test_redis_url_comes_from_a_secret_and_only_the_app_reaches_redis(project: Path) -> None:
    for name in ("dev", "prod"):
        objects = overlay(project, name)
        assert "REDIS_URL" not in config_of(objects)
        for deployment in by_kind(objects, "Deployment").values():
            [redis_url] = [e for e in container(deployment)["env"] if e["name"] == "REDIS_URL"]
            assert redis_url["valueFrom"]["secretKeyRef"]["key"] == "REDIS_URL"

        [policy] = by_kind(objects, "NetworkPolicy").values()
        assert (
            policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
        )
        [rule] = policy["spec"]["ingress"]
        [source] = rule["from"]
        allowed = {
            tuple(e["values"])
            for e in source["podSelector"]["matchExpressions"]
            if e["key"] == "app.kubernetes.io/component"
        }
        apps = {
            d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            for d in by_kind(objects, "Deployment").values()
        }
        assert allowed == {tuple(sorted(apps, key=["worker", "api"].index))}
        assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]

    dev = overlay(project, "dev")
    [server] = by_kind(dev, "StatefulSet").values()
    assert (
        server["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "redis"
    )
    [secret] = by_kind(dev, "Secret").values()
    assert secret["metadata"]["namespace"] == by_kind(dev, "Namespace").popitem()[0]
    assert not by_kind(overlay(project, "prod"), "Secret")  # prod reads one made out of band


def test_keda_scales_workers_on_jobs_ready_to_run_and_keeps_busy_ones(project: Path) -> None:
    objects = overlay(project, "prod")
    [scaled] = by_kind(objects, "ScaledObject").values()
    deployments = by_kind(objects, "Deployment")
    config = config_of(objects)

    assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
    assert "replicas" not in deployments[scaled["spec"]["scaleTargetRef"]["name"]]["spec"]
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["fallback"]["replicas"] >= scaled["spec"]["minReplicaCount"]
    gauges = {}
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "metrics-api"
        assert trigger["metricType"] == "AverageValue"  # KEDA's fallback needs it
        metadata = trigger["metadata"]
        assert metadata["format"] == "prometheus"
        metric = re.fullmatch(r'(\w+)\{queue="([^"]+)"\}', metadata["valueLocation"])
        assert metric, metadata["valueLocation"]
        assert metric.group(2) == "{" + config["QUEUE_PREFIX"] + ":default}"  # the queue's key
        gauges[metric.group(1)] = int(metadata["targetValue"])
        check_served(project, objects, metadata["url"], metric.group(1))

    # Jobs due and not started (not ZCARD, which counts deferred and running jobs too), and the
    # running ones, one worker per WORKER_MAX_JOBS of them.
    assert set(gauges) == {"arq_queue_jobs_waiting", "arq_queue_jobs_running"}
    assert gauges["arq_queue_jobs_waiting"] > 0
    assert gauges["arq_queue_jobs_running"] == int(config["WORKER_MAX_JOBS"])


def check_served(project: Path, objects: list[dict[str, Any]], url: str, metric: str) -> None:
    """The gauge exists in the project, and `url` names a Service, port and pods that serve it."""
    package = next((project / "src").iterdir())
    assert f'"{metric}"' in (package / "infrastructure/ops/metrics.py").read_text()
    parts = re.fullmatch(r"http://([\w-]+)\.([\w-]+)\.svc\.cluster\.local:(\d+)/metrics", url)
    assert parts, url
    service_name, namespace, port = parts.groups()
    service = by_kind(objects, "Service")[service_name]
    assert service["metadata"]["namespace"] == namespace
    assert [p["port"] for p in service["spec"]["ports"]] == [int(port)]
    target = service["spec"]["selector"]["app.kubernetes.io/component"]
    served_by = next(
        d
        for d in by_kind(objects, "Deployment").values()
        if d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == target
    )
    assert int(port) in [p["containerPort"] for p in container(served_by)["ports"]]
    if target == "worker":  # the workers serve the gauges only with metrics on
        assert config_of(objects)["WORKER_METRICS_PORT"] == port


def test_every_object_and_pod_names_the_project(project: Path) -> None:
    slug = next(iter(by_kind(overlay(project, "prod"), "Deployment"))).rsplit("-", 1)[0]
    for name in ("dev", "prod"):
        for item in overlay(project, name):
            assert item["metadata"]["labels"]["app.kubernetes.io/part-of"] == slug
            template = item.get("spec", {}).get("template")
            if template:
                assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == slug


def test_the_api_is_probed_on_its_health_routes(project: Path, combination) -> None:
    if combination.context.get("api_framework") == "none":
        assert not (project / KUBERNETES / "base/api.yaml").exists()
        return
    objects = overlay(project, "prod")
    [api] = [d for name, d in by_kind(objects, "Deployment").items() if name.endswith("-api")]
    api_container = container(api)
    assert api_container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert api_container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    assert api_container["command"] == compose["services"]["api"]["command"]
    assert api_container["securityContext"]["readOnlyRootFilesystem"] is True


def with_worker_bulk(project: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """prod with components/worker-bulk turned on, as its comment there and docs/deployment.md
    ("Worker groups") tell."""
    copy = tmp_path / "prod-bulk"
    shutil.copytree(project / KUBERNETES, copy / KUBERNETES)
    kustomization = copy / KUBERNETES / "overlays/prod/kustomization.yaml"
    text = kustomization.read_text()
    assert "  # - ../../components/worker-bulk\n" in text
    kustomization.write_text(
        text.replace("  # - ../../components/worker-bulk\n", "  - ../../components/worker-bulk\n")
    )
    return kustomize(kustomization.parent)


def test_a_second_worker_group_has_its_own_queue_workers_and_autoscaler(
    project: Path, tmp_path: Path
) -> None:
    objects = with_worker_bulk(project, tmp_path)
    validate(objects)
    config = config_of(objects)
    deployments = by_kind(objects, "Deployment")
    [main] = [d for name, d in deployments.items() if name.endswith("-worker")]
    [bulk] = [d for name, d in deployments.items() if name.endswith("-worker-bulk")]
    main_name, bulk_name = main["metadata"]["name"], bulk["metadata"]["name"]

    # Each queue of QUEUES is served by one group: the main group all but bulk, bulk its own.
    def served(deployment: dict[str, Any]) -> list[str]:
        [queues] = [
            e["value"] for e in container(deployment)["env"] if e["name"] == "WORKER_QUEUES"
        ]
        return queues.split(",")

    queues = config["QUEUES"].split(",")
    assert "default" in queues and "bulk" in queues
    assert served(bulk) == ["bulk"]
    assert sorted(served(main) + served(bulk)) == sorted(queues)

    # The same pod as the main group's, checking its own queue; selectors that do not overlap,
    # so neither Deployment nor disruption budget counts the other group's pods.
    bulk_container, main_container = container(bulk), container(main)
    assert bulk_container["command"] == main_container["command"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert bulk_container[probe]["exec"]["command"][-4:] == [
            "worker-check",
            "--this-host",
            "--queue",
            "bulk",
        ]
    for key in ("resources", "securityContext", "envFrom"):
        assert bulk_container[key] == main_container[key]
    bulk_pod, main_pod = bulk["spec"]["template"]["spec"], main["spec"]["template"]["spec"]
    assert bulk_pod["terminationGracePeriodSeconds"] == main_pod["terminationGracePeriodSeconds"]
    assert "replicas" not in bulk["spec"]
    main_labels = main["spec"]["selector"]["matchLabels"]
    bulk_labels = bulk["spec"]["selector"]["matchLabels"]
    assert not main_labels.items() <= bulk["spec"]["template"]["metadata"]["labels"].items()
    assert not bulk_labels.items() <= main["spec"]["template"]["metadata"]["labels"].items()
    budgets = by_kind(objects, "PodDisruptionBudget")
    assert budgets[bulk_name]["spec"]["selector"]["matchLabels"] == bulk_labels
    assert budgets[main_name]["spec"]["selector"]["matchLabels"] == main_labels

    # One ScaledObject per group, each on its own queue's gauges.
    scaled = {
        s["spec"]["scaleTargetRef"]["name"]: s for s in by_kind(objects, "ScaledObject").values()
    }
    assert set(scaled) == {main_name, bulk_name}
    for name, queue in ((main_name, "default"), (bulk_name, "bulk")):
        for trigger in scaled[name]["spec"]["triggers"]:
            metadata = trigger["metadata"]
            metric = re.fullmatch(r'(\w+)\{queue="([^"]+)"\}', metadata["valueLocation"])
            assert metric, metadata["valueLocation"]
            assert metric.group(2) == "{" + config["QUEUE_PREFIX"] + ":" + queue + "}"
            service = re.match(r"http://([\w-]+)\.", metadata["url"]).group(1)
            selector = by_kind(objects, "Service")[service]["spec"]["selector"]
            component = selector["app.kubernetes.io/component"]
            if component != "api":  # without the API, the group's own workers serve its gauges
                assert (
                    selector.items()
                    <= deployments[name]["spec"]["template"]["metadata"]["labels"].items()
                )

    # The bulk pods may reach a Redis in the cluster, as the main group's do.
    [policy] = by_kind(objects, "NetworkPolicy").values()
    [allowed] = [
        e["values"]
        for e in policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component"
    ]
    assert bulk_labels["app.kubernetes.io/component"] in allowed
    assert main_labels["app.kubernetes.io/component"] in allowed
