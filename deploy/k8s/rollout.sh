#!/bin/sh
# Put a new family (written into the store by the training Job, deploy/k8s/train) into service on every
# serving pod, one pod at a time, stopping at the first pod that refuses it:
#
#   deploy/k8s/rollout.sh [-n NAMESPACE] [restart|reload] [deployment/NAME | inferenceservice/NAME]
#
#   restart (default)  restart the pods through their Deployment and wait. With maxUnavailable 0 and
#                      maxSurge 1 the Deployment starts one new pod, waits until /readyz says it serves,
#                      then retires an old one, and so on. A pod that refuses the family never becomes
#                      ready, so the rollout stops there while the old pods serve on; this command fails
#                      after TIMEOUT seconds (default 600). Safe with any TIERED_WORKERS.
#   reload             POST /admin/reload inside each running pod in turn (kubectl exec): no restart, the
#                      old family serves until the new one is verified; stops at the first refusal (409),
#                      later pods untouched. A pod answers once every one of its TIERED_WORKERS workers
#                      serves the new family.
#
# The target is deployment/tiered (deploy/k8s/base, the default) or inferenceservice/tiered (the KServe
# overlay: restart goes through the InferenceService, whose Deployment KServe names tiered-predictor).
# The token is read inside each pod, so it never appears on a command line.
set -eu

here="$(dirname "$0")"
namespace=""
while getopts n: option; do
    case "$option" in
        n) namespace="$OPTARG" ;;
        *) echo "usage: $0 [-n NAMESPACE] [restart|reload] [deployment/NAME | inferenceservice/NAME]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
mode="${1:-restart}"
target="${2:-deployment/tiered}"

kube() {
    kubectl ${namespace:+--namespace "$namespace"} "$@"
}

case "$mode" in
    restart | reload) ;;
    *) echo "rollout: unknown mode '$mode' (restart or reload)" >&2; exit 2 ;;
esac
# KServe names the Deployment of an InferenceService's predictor NAME-predictor and its container
# kserve-container; deploy/k8s/base names them tiered and tiered.
case "$target" in
    deployment/?*) deployment="${target#deployment/}"; container="$deployment" ;;
    inferenceservice/?* | isvc/?*) deployment="${target#*/}-predictor"; container=kserve-container ;;
    *) echo "rollout: unknown target '$target' (deployment/NAME or inferenceservice/NAME)" >&2; exit 2 ;;
esac

if [ "$mode" = restart ]; then
    case "$target" in
        deployment/*) kube rollout restart "deployment/$deployment" ;;
        # KServe owns the Deployment: a changed pod annotation on the InferenceService makes it roll.
        *) kube patch "inferenceservice/${target#*/}" --type merge -p \
               "{\"spec\":{\"predictor\":{\"annotations\":{\"tiered/restarted-at\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}}}}" ;;
    esac
    if ! kube rollout status "deployment/$deployment" --timeout="${TIMEOUT:-600}s"; then
        echo "rollout: deployment/$deployment did not finish: a new pod is not ready (kubectl describe," \
             "kubectl logs); the pods not yet replaced serve the old family. Point CURRENT back or train" \
             "again, and the stalled pod starts by itself." >&2
        exit 1
    fi
    exit 0
fi

# The Deployment's own selector finds its pods, whatever labels an overlay adds.
selector="$(kube get "deployment/$deployment" \
    -o go-template='{{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}},{{end}}')"
pods="$(kube get pods --selector "${selector%,}" --field-selector status.phase=Running -o name)"
[ -n "$pods" ] || { echo "rollout: no running pod of deployment/$deployment" >&2; exit 1; }

reload="$(cat "$here/../reload.py")"
for pod in $pods; do
    echo "rollout: reloading $pod"
    if ! kube exec "$pod" -c "$container" -- python -c "$reload"; then
        echo "rollout: $pod did not take the new family; stopping, later pods untouched" >&2
        exit 1
    fi
done
