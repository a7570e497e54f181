"""infra/: every manifest parses, carries the fields Kubernetes, KEDA and the Prometheus operator require,
and names only what exists — objects in infra/, settings the code reads, routes the apps serve, fields
the signal has, and metrics the code defines."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlparse

import msgspec
import pytest
import yaml
from litestar import Litestar
from prometheus_client import REGISTRY

from app.autoscale.schemas import Signal
from app.chain.client import Chain
from app.config import Settings, load_settings
from app.main import create_app
from app.proxy.config import load_proxy_settings
from app.proxy.node.app import create_proxy_app
from app.resources import CHECKOUT_ROOT
from tests.test_readme import known_variables

INFRA = CHECKOUT_ROOT / "infra"
NAMESPACE = "twin"
EXPOSED_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
KEDA_METRIC_TYPES = {"AverageValue", "Value", "Utilization"}


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(INFRA.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                yield path, document


def objects(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in manifests() if document["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [document for document in objects(kind) if document["metadata"]["name"] == name]
    return found


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    pod = deployment["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def is_number(text: Any) -> bool:
    return isinstance(text, str) and re.fullmatch(r"\d+(\.\d+)?", text) is not None


def route_paths(app: Litestar) -> set[str]:
    return {route.path for route in app.routes}


def exposed_metric_names() -> set[str]:
    """Every series name the process's registry exposes, whatever labels its children will have."""
    return {metric.name + suffix for metric in REGISTRY.collect() for suffix in EXPOSED_SUFFIXES[metric.type]}


def promql_expressions() -> list[str]:
    trigger_queries = [
        trigger["metadata"]["query"]
        for scaled in objects("ScaledObject")
        for trigger in scaled["spec"]["triggers"]
        if trigger["type"] == "prometheus"
    ]
    alert_exprs = [
        rule["expr"]
        for rules in objects("PrometheusRule")
        for group in rules["spec"]["groups"]
        for rule in group["rules"]
    ]
    return trigger_queries + alert_exprs


@pytest.fixture
def backend(settings: Settings, chain: Chain) -> Litestar:
    return create_app(settings, chain=chain)


@pytest.fixture
def proxy_node(chain: Chain) -> Litestar:
    return create_proxy_app(load_proxy_settings(), chain)


def test_every_manifest_names_its_kind_and_lives_in_the_namespace() -> None:
    found = list(manifests())
    assert {document["kind"] for _, document in found} >= {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "ScaledObject",
        "ServiceMonitor",
        "PrometheusRule",
        "Kustomization",
        "HorizontalPodAutoscaler",
    }
    for path, document in found:
        assert document.get("apiVersion"), path
        if document["kind"] == "Kustomization":
            assert document["namespace"] == NAMESPACE
            assert sorted(document["resources"]) == sorted(p.name for p in INFRA.glob("*.yaml") if p != path)
        elif document["kind"] == "Namespace":
            assert document["metadata"]["name"] == NAMESPACE
        else:
            assert document["metadata"]["name"], path
            assert document["metadata"]["namespace"] == NAMESPACE, (path, document["metadata"]["name"])


def test_deployments_select_their_pods_and_use_config_that_exists() -> None:
    config_maps = {document["metadata"]["name"]: document["data"] for document in objects("ConfigMap")}
    secrets = {document["metadata"]["name"]: document["stringData"] for document in objects("Secret")}
    for deployment in objects("Deployment"):
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        for container in containers(deployment):
            assert container["name"]
            assert container["image"]
            assert container["command"][0] == "twin"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                else:
                    assert source["secretRef"]["name"] in secrets
            ports = {port["name"] for port in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["port"] in ports


def test_probes_and_scrapes_hit_routes_the_apps_serve(backend: Litestar, proxy_node: Litestar) -> None:
    served = {"twin-backend": route_paths(backend), "twin-proxy-node": route_paths(proxy_node)}
    for deployment in objects("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["path"] in served[deployment["metadata"]["name"]]
    for monitor in objects("ServiceMonitor"):
        service = named("Service", monitor["metadata"]["name"])
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
            assert endpoint["path"] in served[service["metadata"]["name"]]


def test_services_route_to_a_deployment_port() -> None:
    for service in objects("Service"):
        selector = service["spec"]["selector"].items()
        (deployment,) = [
            deployment
            for deployment in objects("Deployment")
            if selector <= deployment["spec"]["template"]["metadata"]["labels"].items()
        ]
        ports = {port["name"] for container in containers(deployment) for port in container.get("ports", [])}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports


def test_settings_given_to_the_pods_are_real_and_valid() -> None:
    given: dict[str, str] = {}
    for config_map in objects("ConfigMap"):
        given |= config_map["data"]
    for secret in objects("Secret"):
        given |= secret["stringData"]
    for deployment in objects("Deployment"):
        for container in containers(deployment):
            given |= {
                env["name"]: env.get("value", "") for env in container.get("env", []) if env["name"].startswith("TWIN_")
            }
    twin = {name: value for name, value in given.items() if name.startswith("TWIN_")}
    assert set(twin) - known_variables() == set()
    placeholders = {name: value for name, value in twin.items() if "change-me" in value or "$(" in value}
    assert set(placeholders) <= {
        "TWIN_CHAIN_RPC_URL",
        "TWIN_DATABASE_URL",
        "TWIN_REDIS_URL",
        "TWIN_PROXY_PLATFORM_WALLET_KEY",
        "TWIN_PROXY_PAYMENT_PRIVATE_KEY",
        "TWIN_PROXY_PUBLIC_URL",
    }
    settable = {name: value for name, value in twin.items() if name not in placeholders}
    with mock.patch.dict(os.environ, settable):  # what the pods get passes the apps' own validation
        settings = load_settings()
        load_proxy_settings()
    assert settings.autoscale_cold_start_s < settings.autoscale_stabilization_s


def test_the_backend_runs_several_replicas_scaled_on_cpu() -> None:
    backend = named("Deployment", "twin-backend")
    assert backend["spec"]["replicas"] >= 2
    assert backend["spec"]["strategy"]["type"] == "RollingUpdate"
    (hpa,) = objects("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "twin-backend")
    assert 2 <= hpa["spec"]["minReplicas"] <= backend["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert (metric["type"], metric["resource"]["name"], metric["resource"]["target"]["type"]) == (
        "Resource",
        "cpu",
        "Utilization",
    )
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    (container,) = backend["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"]  # utilization is measured against the request
    journal = next(env["value"] for env in container["env"] if env["name"] == "TWIN_CHAT_JOURNAL_DIR")
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"] for volume in backend["spec"]["template"]["spec"]["volumes"]}
    assert mounts[journal] in volumes


def test_the_scaled_object_has_what_keda_requires() -> None:
    (scaled,) = objects("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    target = named("Deployment", spec["scaleTargetRef"]["name"])
    assert target["metadata"]["name"] == "twin-proxy-node"
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert isinstance(spec["pollingInterval"], int)
    assert spec["pollingInterval"] > 0
    assert isinstance(spec["cooldownPeriod"], int)
    assert spec["cooldownPeriod"] >= 0
    assert spec["fallback"]["failureThreshold"] > 0
    assert spec["fallback"]["replicas"] >= spec["minReplicaCount"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    for direction in ("scaleUp", "scaleDown"):
        rules = behavior[direction]
        assert 0 <= rules["stabilizationWindowSeconds"] <= 3600
        assert rules["selectPolicy"] in {"Max", "Min", "Disabled"}
        for policy in rules["policies"]:
            assert policy["type"] in {"Pods", "Percent"}
            assert isinstance(policy["value"], int)
            assert policy["value"] > 0
            assert 0 < policy["periodSeconds"] <= 1800
    triggers = {trigger["type"]: trigger for trigger in spec["triggers"]}
    assert set(triggers) == {"metrics-api", "prometheus"}
    for trigger in triggers.values():
        assert trigger.get("metricType", "AverageValue") in KEDA_METRIC_TYPES
    signal = triggers["metrics-api"]["metadata"]
    assert signal["format"] in {"json", "xml", "yaml", "prometheus"}
    assert is_number(signal["targetValue"])
    queue = triggers["prometheus"]["metadata"]
    assert urlparse(queue["serverAddress"]).scheme in {"http", "https"}
    assert queue["query"]
    assert is_number(queue["threshold"])


def test_the_signal_trigger_reads_the_real_route_and_field(backend: Litestar) -> None:
    (scaled,) = objects("ScaledObject")
    (trigger,) = [trigger for trigger in scaled["spec"]["triggers"] if trigger["type"] == "metrics-api"]
    url = urlparse(trigger["metadata"]["url"])
    assert url.path in route_paths(backend)
    assert url.path == "/api/autoscale/signal"
    service = named("Service", "twin-backend")
    assert url.hostname == f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert (url.port or 80) in {port["port"] for port in service["spec"]["ports"]}
    fields = {field.name: field.type for field in msgspec.structs.fields(Signal)}
    assert fields[trigger["metadata"]["valueLocation"]] is int  # a whole number of nodes


def test_queries_and_alerts_name_metrics_the_code_defines(backend: Litestar, proxy_node: Litestar) -> None:
    exposed = exposed_metric_names()
    named_in_queries = {
        name for expression in promql_expressions() for name in re.findall(r"\b(twin_[a-z0-9_]+)\b", expression)
    }
    assert named_in_queries >= {
        "twin_chat_queue_depth",
        "twin_chat_queue_wait_seconds_bucket",
        "twin_indexer_lag_blocks",
        "twin_proxy_payments_total",
        "twin_autoscale_desired_nodes",
    }
    assert named_in_queries - exposed == set()
    buckets = {
        sample.labels["le"]
        for metric in REGISTRY.collect()
        if metric.name == "twin_chat_queue_wait_seconds"
        for sample in metric.samples
        if sample.name.endswith("_bucket")
    }
    for expression in promql_expressions():
        for bound in re.findall(r'twin_chat_queue_wait_seconds_bucket\{le="([^"]+)"\}', expression):
            assert bound in buckets


def test_alert_rules_have_what_the_prometheus_operator_requires() -> None:
    (rules,) = objects("PrometheusRule")
    assert rules["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = {rule["alert"]: rule for group in rules["spec"]["groups"] for rule in group["rules"]}
    assert {"TwinChatQueueWaitSLO", "TwinIndexerLag", "TwinPaymentFailures"} <= set(alerts)
    for alert in alerts.values():
        assert re.fullmatch(r"\d+[smh]", alert["for"])
        assert alert["labels"]["severity"] in {"page", "warning"}
        assert alert["annotations"]["summary"]
