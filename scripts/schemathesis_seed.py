"""Seeds a tenant for the tenant-scoped schemathesis passes (run by scripts/schemathesis).

Usage: schemathesis_seed.py BASE_URL PLATFORM_TOKEN TENANT ROLE

Creates TENANT through the API with a table in every zone (each named `<zone>_orders`), an
HTTP stream `clicks` with pushed events, a share `sales` of the gold and bronze tables with a
recipient, a maintenance run, a silver-to-gold pipeline `rollup`, and a table, stream, share
and pipeline named `doomed` for the delete operations, so that generated calls naming them reach the handlers instead of 404s.
Prints one bearer token: a ROLE token of the tenant (`tenant-admin` or `engineer`), or for
ROLE `recipient` the share recipient's profile token.
"""

import sys
import time

import requests


def main() -> None:
    base, admin, tenant, role = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    if role not in ("tenant-admin", "engineer", "recipient"):
        sys.exit(f"seed: unknown role {role}")
    session = requests.Session()

    def call(method: str, path: str, token: str = admin, expect: int = 200, **kwargs):
        response = session.request(
            method, f"{base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
        )
        if response.status_code != expect:
            sys.exit(f"seed: {method} {path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    call("POST", "/v1/tenants", json={"id": tenant, "display_name": tenant, "tier": "standard"}, expect=201)
    deadline = time.monotonic() + 30
    while call("GET", f"/v1/tenants/{tenant}")["status"] != "ready":
        if time.monotonic() > deadline:
            sys.exit("seed: the tenant never became ready")
        time.sleep(0.1)
    columns = [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}]
    for zone in ("bronze", "silver", "gold"):
        table = {"zone": zone, "name": f"{zone}_orders", "columns": columns}
        call("POST", f"/v1/tenants/{tenant}/tables", json=table, expect=201)
    stream = {"name": "clicks", "table": {"zone": "bronze", "name": "bronze_orders"}, "source": {"type": "http"}}
    call("POST", f"/v1/tenants/{tenant}/streams", json=stream, expect=201)
    events = "".join(f'{{"id": {i}, "name": "n{i}"}}\n' for i in range(20))
    pushed = session.post(
        f"{base}/v1/tenants/{tenant}/streams/clicks/events",
        data=events,
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/x-ndjson"},
        timeout=30,
    )
    if pushed.status_code != 200:
        sys.exit(f"seed: pushing events answered {pushed.status_code}: {pushed.text}")
    # Tables, a stream and a share that the fuzzing passes may delete, so the ones they keep
    # calling stay.
    call("POST", f"/v1/tenants/{tenant}/tables", json={"zone": "silver", "name": "doomed", "columns": columns}, expect=201)
    doomed_stream = {"name": "doomed", "table": {"zone": "bronze", "name": "bronze_orders"}, "source": {"type": "http"}}
    call("POST", f"/v1/tenants/{tenant}/streams", json=doomed_stream, expect=201)
    doomed_share = {"name": "doomed", "tables": [{"zone": "gold", "name": "gold_orders"}]}
    call("POST", f"/v1/tenants/{tenant}/shares", json=doomed_share, expect=201)
    share = {"name": "sales", "tables": [{"zone": "gold", "name": "gold_orders"}, {"zone": "bronze", "name": "bronze_orders"}]}
    call("POST", f"/v1/tenants/{tenant}/shares", json=share, expect=201)
    recipient = call(
        "POST", f"/v1/tenants/{tenant}/shares/sales/recipients", json={"name": "bob", "ttl_seconds": 3600}, expect=201
    )
    for name, target in (("rollup", "rollup"), ("doomed", "doomed_rollup")):
        pipeline = {
            "name": name,
            "source": {"zone": "silver", "table": "silver_orders"},
            "target": {"zone": "gold", "table": target},
            "aggregate": {"group_by": ["name"], "measures": [{"name": "orders", "expr": "count(*)"}]},
            "trigger": {"type": "manual"},
        }
        call("POST", f"/v1/tenants/{tenant}/pipelines", json=pipeline, expect=201)
    run = {"operations": ["compact"]}
    call("POST", f"/v1/tenants/{tenant}/tables/silver/silver_orders/maintenance", json=run, expect=202)
    if role == "recipient":
        print(recipient["profile"]["bearerToken"])
        return
    issued = call(
        "POST",
        f"/v1/tenants/{tenant}/tokens",
        json={"subject": f"schemathesis-{role}", "role": role, "ttl_seconds": 86400},
        expect=201,
    )
    print(issued["token"])

if __name__ == "__main__":
    main()
