#!/bin/sh
# Put a new family (already written into the volume by `docker compose run --rm train ...`) into
# service on every api replica, one replica at a time, so the others keep answering:
#
#   deploy/rollout.sh reload    POST /admin/reload inside each replica (default; no restart, the old
#                               family serves until the new one is verified). The replica answers once
#                               every one of its TIERED_WORKERS workers serves the new family.
#   deploy/rollout.sh restart   restart each replica and wait until it is healthy again (any worker count).
#
# Run it from the directory holding docker-compose.yml. The token is read inside each container, so it
# never appears on a command line.
set -eu

mode="${1:-reload}"
case "$mode" in
    reload | restart) ;;
    *) echo "rollout: unknown mode '$mode' (reload or restart)" >&2; exit 2 ;;
esac
containers="$(docker compose ps -q api)"
[ -n "$containers" ] || { echo "rollout: no running api replica (docker compose up first)" >&2; exit 1; }

# Runs inside the container (the slim image has Python, not curl); a 409 (family refused) stops the loop.
reload="$(cat "$(dirname "$0")/reload.py")"

for container in $containers; do
    case "$mode" in
        reload)
            echo "rollout: reloading $container"
            docker exec "$container" python -c "$reload"
            ;;
        restart)
            echo "rollout: restarting $container"
            docker restart "$container" >/dev/null
            waited=0
            while :; do
                status="$(docker inspect -f '{{.State.Health.Status}}' "$container")"
                [ "$status" = healthy ] && break
                # Stop at the first replica that does not come back: the rest still serve the old family.
                if [ "$status" != starting ] || [ "$waited" -ge 180 ]; then
                    echo "rollout: $container is $status after ${waited} s; stopping, later replicas untouched" >&2
                    exit 1
                fi
                sleep 2
                waited=$((waited + 2))
            done
            ;;
    esac
done
