"""POST /admin/reload to the server in this container, and say what it answered.

deploy/rollout.sh (compose) and deploy/k8s/rollout.sh (Kubernetes) run this text inside each replica
with `python -c`, so the token and port are read there and never appear on a command line. It exits
non-zero, naming the status, when the server refuses the family (409), which stops the rollout. A
reload reaches one uvicorn worker, so it refuses to run where TIERED_WORKERS is above 1: restart those.
"""

import os
import sys
import urllib.error
import urllib.request

workers = int(os.environ.get("TIERED_WORKERS", "1"))
if workers > 1:
    sys.exit(f"rollout: TIERED_WORKERS={workers} here and a reload reaches one worker; use restart")
request = urllib.request.Request(
    f"http://127.0.0.1:{os.environ['TIERED_PORT']}/admin/reload", method="POST",
    headers={"Authorization": "Bearer " + os.environ["TIERED_ADMIN_TOKEN"]})
try:
    with urllib.request.urlopen(request, timeout=300) as answer:
        print(answer.read().decode())
except urllib.error.HTTPError as refusal:
    sys.exit(f"rollout: reload refused ({refusal.code}): {refusal.read().decode()}")
