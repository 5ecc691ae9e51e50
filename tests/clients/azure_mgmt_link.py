"""Microsoft's own management client (azure-mgmt-sql from PyPI) against the lab's
fake ARM: it creates a distributed availability group, polls the long-running
operation to its end, reads it back, pages through the list, uploads a server
trust certificate and deletes the DAG. Input: the first line of
`milink lab up --json` on stdin. Output: one JSON object."""

import json

from lab_arm import arm, client, lab

rg, mi = arm["resource_group"], arm["managed_instance"]
out = {}

ep = client.endpoint_certificates.get(rg, mi, "DATABASE_MIRRORING")
out["endpoint_certificate_bytes"] = len(ep.public_blob) // 2

poller = client.server_trust_certificates.begin_create_or_update(
    rg, mi, "Cert_lab_trust", {"properties": {"publicBlob": ep.public_blob}}, polling_interval=0.05
)
trust = poller.result()
out["trust"] = {"status": poller.status(), "name": trust.name, "thumbprint": trust.properties.thumbprint}

body = {
    "properties": {
        "partnerAvailabilityGroupName": "AG_SalesDB",
        "instanceAvailabilityGroupName": "AG_SalesDB_MI",
        "partnerEndpoint": "TCP://%s:5022" % lab["sql_server"]["host"],
        "databases": [{"databaseName": "SalesDB"}],
        "instanceLinkRole": "Secondary",
        "failoverMode": "None",
        "seedingMode": "Automatic",
    }
}
poller = client.distributed_availability_groups.begin_create_or_update(rg, mi, "DAG_SalesDB", body, polling_interval=0.05)
dag = poller.result()
out["created"] = {
    "status": poller.status(),
    "name": dag.name,
    "type": dag.type,
    "partner": dag.properties.partner_availability_group_name,
    "instance_ag": dag.properties.instance_availability_group_name,
    "databases": [d.database_name for d in dag.properties.databases],
}
got = client.distributed_availability_groups.get(rg, mi, "DAG_SalesDB")
out["get"] = {"id": got.id, "endpoint": got.properties.partner_endpoint, "replica_state": got.properties.databases[0].replica_state}

poller = client.distributed_availability_groups.begin_create_or_update(
    rg, mi, "DAG_Second", {"properties": dict(body["properties"], partnerAvailabilityGroupName="AG_Second")}, polling_interval=0.05
)
poller.result()
out["listed"] = sorted(d.name for d in client.distributed_availability_groups.list_by_instance(rg, mi))

poller = client.distributed_availability_groups.begin_delete(rg, mi, "DAG_Second", polling_interval=0.05)
poller.result()
out["deleted"] = poller.status()
out["after_delete"] = sorted(d.name for d in client.distributed_availability_groups.list_by_instance(rg, mi))
print(json.dumps(out))
