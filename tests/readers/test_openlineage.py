"""OpenLineage events from `wh build`: written as JSON lines, and delivered to
an HTTP endpoint the test starts on loopback. Every event is validated
against a JSON Schema of the RunEvent structure of the spec (2-0-2):
required fields, event types, UUID run ids, date-time, and `_producer` /
`_schemaURL` on every facet."""

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest

from conftest import GOLDEN_RAW, WH, copy_example

FACET = {"type": "object", "required": ["_producer", "_schemaURL"],
         "properties": {"_producer": {"type": "string", "format": "uri"}, "_schemaURL": {"type": "string", "format": "uri"}}}
FACETS = {"type": "object", "additionalProperties": FACET}
DATASET = {"type": "object", "required": ["namespace", "name"],
           "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": FACETS}}
RUN_EVENT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["eventType", "eventTime", "run", "job", "producer", "schemaURL"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "format": "uri"},
        "run": {"type": "object", "required": ["runId"],
                "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": FACETS}},
        "job": {"type": "object", "required": ["namespace", "name"],
                "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": FACETS}},
        "inputs": {"type": "array", "items": DATASET},
        "outputs": {"type": "array", "items": DATASET},
    },
}


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    project = tmp_path_factory.mktemp("ol")
    copy_example(project)
    raw = GOLDEN_RAW
    env = dict(os.environ, OPENLINEAGE_URL=f"http://127.0.0.1:{server.server_address[1]}")
    subprocess.run([WH, "build", "--quiet", "--vars", f"{{raw_root: '{raw}'}}"], cwd=project, check=True, env=env)
    server.shutdown()
    lines = (project / "target" / "openlineage.jsonl").read_text().splitlines()
    return [json.loads(l) for l in lines], received


def test_every_event_is_valid_and_delivered(delivered):
    written, received = delivered
    checker = jsonschema.Draft202012Validator(RUN_EVENT, format_checker=jsonschema.FormatChecker())
    for event in written:
        checker.validate(event)
    assert [path for path, _ in received] == ["/api/v1/lineage"] * len(written)
    assert [e for _, e in received] == written
    # The invocation is the parent run: first START, last COMPLETE.
    assert written[0]["eventType"] == "START" and written[-1]["eventType"] == "COMPLETE"
    parent = written[0]["run"]["runId"]
    models = [e for e in written if e["job"]["name"] != "shop.invocation"]
    assert len(models) == 30  # 15 models x (START, COMPLETE)
    for e in models:
        assert e["run"]["facets"]["parent"]["run"]["runId"] == parent


def test_facets_carry_lineage_quality_ownership_docs_and_sql(delivered):
    written, _ = delivered
    done = {e["job"]["name"]: e for e in written if e["eventType"] == "COMPLETE"}
    summary = done["shop.customer_order_summary"]
    out = summary["outputs"][0]
    assert out["namespace"] == "file" and out["name"].endswith("/warehouse/marts/customer_order_summary.parquet")
    facets = out["facets"]
    spent = facets["columnLineage"]["fields"]["total_spent"]["inputFields"]
    assert spent == [{
        "namespace": "file",
        "name": spent[0]["name"],
        "field": "total_amount",
        "transformations": [{"type": "DIRECT", "subtype": "AGGREGATION"}],
    }]
    assert spent[0]["name"].endswith("/warehouse/star/fct_orders.parquet")
    assert {"name": "total_spent", "type": "double"} in facets["schema"]["fields"]
    assert facets["ownership"]["owners"] == [
        {"name": "analytics-engineering", "type": "OWNER"},
        {"name": "customer-insights", "type": "DATA_STEWARD"},
    ]
    assert "Every customer" in facets["documentation"]["description"]
    names = {a["assertion"] for a in facets["dataQualityAssertions"]["assertions"]}
    assert "unique_customer_order_summary_customer_id" in names
    assert "select" in summary["job"]["facets"]["sql"]["query"]
    stg = done["shop.stg_orders"]
    assert stg["inputs"][0]["name"].endswith("tests/fixtures/golden/raw/orders.parquet")
