"""Seeds a tenant for the tenant-scoped schemathesis passes (run by scripts/schemathesis).

Usage: schemathesis_seed.py BASE_URL PLATFORM_TOKEN TENANT

Creates TENANT through the API with a table in every zone, an HTTP stream with pushed
events, a share of the gold table with a recipient, and a maintenance run, so that generated
calls naming the tenant reach its handlers instead of 404s. Prints two tokens of the tenant, a
tenant-admin's and an engineer's, one per line.
"""

import sys
import time

import requests


def main() -> None:
    base, admin, tenant = sys.argv[1], sys.argv[2], sys.argv[3]
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
    share = {"name": "sales", "tables": [{"zone": "gold", "name": "gold_orders"}]}
    call("POST", f"/v1/tenants/{tenant}/shares", json=share, expect=201)
    call("POST", f"/v1/tenants/{tenant}/shares/sales/recipients", json={"name": "bob", "ttl_seconds": 3600}, expect=201)
    run = {"operations": ["compact"]}
    call("POST", f"/v1/tenants/{tenant}/tables/silver/silver_orders/maintenance", json=run, expect=202)
    for role in ("tenant-admin", "engineer"):
        issued = call(
            "POST",
            f"/v1/tenants/{tenant}/tokens",
            json={"subject": f"schemathesis-{role}", "role": role, "ttl_seconds": 86400},
            expect=201,
        )
        print(issued["token"])


if __name__ == "__main__":
    main()
