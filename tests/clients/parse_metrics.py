"""Parses Prometheus text exposition from stdin with Prometheus's own Python
parser and prints the samples as JSON: [{"name", "labels", "value", "type"}]."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type})
json.dump(out, sys.stdout)
