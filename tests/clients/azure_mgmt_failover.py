"""Microsoft's own management client (azure-mgmt-sql from PyPI) drives the
lab's role changes of a link: PATCH of replicationMode, a planned failover to
the instance, setRole back to SQL Server, a refused setRole, a forced failover
and the instance made secondary again. Each is a long-running operation the
client polls to its end. Input: the first line of `milink lab up --json` on
stdin. Output: one JSON object."""

import json

from azure.core.exceptions import HttpResponseError

from lab_arm import arm, client

dags = client.distributed_availability_groups
rg, mi, dag = arm["resource_group"], arm["managed_instance"], "DAG_SalesDB"
out = {}


def roles(d):
    return {"instance": d.properties.instance_link_role, "partner": d.properties.partner_link_role}


poller = dags.begin_update(rg, mi, dag, {"properties": {"replicationMode": "Sync"}}, polling_interval=0.05)
mode = poller.result().properties.replication_mode
out["update"] = {"status": poller.status(), "mode": mode}

poller = dags.begin_failover(rg, mi, dag, {"failoverType": "Planned"}, polling_interval=0.05)
poller.result()
out["planned"] = {"status": poller.status(), **roles(dags.get(rg, mi, dag))}

try:
    dags.begin_set_role(rg, mi, dag, {"instanceRole": "Primary", "roleChangeType": "Planned"}, polling_interval=0.05)
    out["primary_planned"] = "accepted"
except HttpResponseError as e:
    out["primary_planned"] = e.error.code if e.error else str(e.status_code)

poller = dags.begin_set_role(rg, mi, dag, {"instanceRole": "Secondary", "roleChangeType": "Planned"}, polling_interval=0.05)
poller.result()
out["back"] = {"status": poller.status(), **roles(dags.get(rg, mi, dag))}

poller = dags.begin_failover(rg, mi, dag, {"failoverType": "ForcedAllowDataLoss"}, polling_interval=0.05)
poller.result()
out["forced"] = {"status": poller.status(), **roles(dags.get(rg, mi, dag))}

poller = dags.begin_set_role(rg, mi, dag, {"instanceRole": "Secondary", "roleChangeType": "Forced"}, polling_interval=0.05)
poller.result()
out["secondary_again"] = {"status": poller.status(), **roles(dags.get(rg, mi, dag))}
print(json.dumps(out))
