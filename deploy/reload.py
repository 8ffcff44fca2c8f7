"""POST /admin/reload to the server in this container, and say what it answered.

deploy/rollout.sh (compose) and deploy/k8s/rollout.sh (Kubernetes) run this text inside each replica
with `python -c`, so the token and port are read there and never appear on a command line. The server
answers once every worker serves the new family (any TIERED_WORKERS); it exits non-zero, naming the
status, when the server refuses the family (409: a worker could not verify it, and all serve the old
one on), which stops the rollout.
"""

import os
import sys
import urllib.error
import urllib.request

request = urllib.request.Request(
    f"http://127.0.0.1:{os.environ['TIERED_PORT']}/admin/reload", method="POST",
    headers={"Authorization": "Bearer " + os.environ["TIERED_ADMIN_TOKEN"]})
try:
    with urllib.request.urlopen(request, timeout=600) as answer:
        print(answer.read().decode())
except urllib.error.HTTPError as refusal:
    sys.exit(f"rollout: reload refused ({refusal.code}): {refusal.read().decode()}")
