"""The KServe overlay's InferenceService, checked by structure (kubernetes-validate has no schema for it;
test_manifests.py validates the Deployment KServe makes of it): a custom predictor in raw deployment
mode with an HPA, following KServe's rules for the custom container, and the same pod as the base's.

The rules, and where each comes from (deploy/k8s/overlays/kserve/inferenceservice.yaml says more):
KServe's docs, "Deploy Custom Python Serving Runtime" (container `kserve-container`, HTTP on 8080, gRPC
on a port named `h2c`, STORAGE_URI and PROTOCOL), kserve's validation webhook
(pkg/apis/serving/v1beta1/inference_service_validation.go: the name, autoscaler class and HPA metrics and
targets; predictor_custom.go: PROTOCOL v1 or v2) and Knative's (port names, probe ports).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

Object = dict[str, Any]

ISVC_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # kserve IsvcNameFmt
RAW_MODES = {"RawDeployment", "Standard"}  # Standard is the name since KServe 0.16; both are taken
HPA_METRICS = {"cpu", "memory"}  # kserve AutoscalerAllowedHPAMetricsList
KNATIVE_PORT_NAMES = {"", "http1", "h2c"}  # knative validPortNames; raw mode takes any, these keep both
MODEL_FORMATS = {"sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml",
                 "lightgbm", "paddle", "model"}


@pytest.fixture
def isvc(k8s: Any, kserve_overlay: str) -> Object:
    inference_service: Object = k8s[kserve_overlay].one("InferenceService")
    return inference_service


def test_inference_service_is_a_custom_predictor_in_raw_mode_scaled_by_an_hpa(isvc: Object) -> None:
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert ISVC_NAME.fullmatch(isvc["metadata"]["name"]), isvc["metadata"]["name"]
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] in RAW_MODES, annotations
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa", annotations
    predictor = isvc["spec"]["predictor"]
    assert not MODEL_FORMATS & set(predictor), "a custom predictor has containers and no model format"
    assert predictor["scaleMetric"] in HPA_METRICS, predictor["scaleMetric"]
    assert 1 <= predictor["scaleTarget"] <= 100, "an HPA's CPU target is a utilisation percentage"
    assert 2 <= predictor["minReplicas"] <= predictor["maxReplicas"], predictor


def test_kserve_container_follows_the_custom_predictor_rules(isvc: Object, k8s: Any,
                                                            kserve_overlay: str) -> None:
    manifests = k8s[kserve_overlay]
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container"
    settings, ports = manifests.settings(), container["ports"]
    assert {p.get("name", "") for p in ports} <= KNATIVE_PORT_NAMES, ports
    http, *others = ports
    assert http["containerPort"] == settings.port == 8080, f"HTTP on KServe's 8080: {http}"
    grpc_port = getattr(settings, "grpc_port", None)
    expected = [{"name": "h2c", "containerPort": grpc_port, "protocol": "TCP"}] if grpc_port else []
    assert others == expected, f"gRPC, when on, is one port named h2c on TIERED_GRPC_PORT: {others}"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert set(container[probe]) - {"periodSeconds", "timeoutSeconds", "failureThreshold"} == {"httpGet"}
        assert container[probe]["httpGet"].get("port") == http["name"], (
            f"{probe} must name the serving port ({http['name']}): Knative accepts no other, and raw mode's "
            f"Deployment needs one")
    env = manifests.environment(container)
    assert env["PROTOCOL"] == "v2", "the service speaks the Open Inference Protocol (v2)"
    claim = env["STORAGE_URI"].removeprefix("pvc://")
    assert env["STORAGE_URI"].startswith("pvc://") and manifests.one("PersistentVolumeClaim", claim)


def test_kserve_pods_are_the_base_pods(isvc: Object, k8s: Any, kserve_overlay: str) -> None:
    """The overlay cannot inherit the base's pod template, so it repeats it; this keeps the copy true."""
    base, kserve = k8s[kserve_overlay.replace("kserve", "base")], k8s[kserve_overlay]
    base_pod = base.serving()["spec"]["template"]["spec"]
    kserve_pod = kserve.serving()["spec"]["template"]["spec"]
    for key in ("securityContext", "terminationGracePeriodSeconds", "topologySpreadConstraints",
                "serviceAccountName", "automountServiceAccountToken"):
        assert kserve_pod[key] == base_pod[key], key
    # The waiting container too, but for the ConfigMap (its own name) and the mount path (KServe's).
    (base_init,), (init,) = base_pod["initContainers"], kserve_pod["initContainers"]
    unlike = {"envFrom": None, "volumeMounts": None}
    assert {**init, **unlike} == {**base_init, **unlike}, "wait-for-family"
    base_container, container = base.container(), kserve.container()
    for key in ("image", "imagePullPolicy", "resources", "securityContext", "lifecycle"):
        assert container[key] == base_container[key], key
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        # The port is named differently (http1 for Knative's sake, http in the base); the rest agrees.
        kserve_probe, base_probe = ({**p, "httpGet": {**p["httpGet"], "port": None}}
                                    for p in (container[probe], base_container[probe]))
        assert kserve_probe == base_probe, probe
    assert base.serving()["spec"]["strategy"] == kserve.serving()["spec"]["strategy"]
    hpa = base.one("HorizontalPodAutoscaler")["spec"]
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["scaleTarget"]) == (
        hpa["minReplicas"], hpa["maxReplicas"], hpa["metrics"][0]["resource"]["target"]["averageUtilization"])
