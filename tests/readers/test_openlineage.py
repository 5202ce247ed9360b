"""OpenLineage events from `wh build`: written as JSON lines, and delivered to
an HTTP endpoint the test starts on loopback. Every event is validated
against the official OpenLineage model (`official_openlineage.py`: the
classes the OpenLineage project generates from its spec's JSON schemas,
with each facet's exact schema version), and against a JSON Schema of the
RunEvent formats of spec 2-0-2 (UUID run ids, date-times, URIs)."""

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest

import official_openlineage
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
        official_openlineage.validate(event)
    assert [path for path, _ in received] == ["/api/v1/lineage"] * len(written)
    assert [e for _, e in received] == written
    # The invocation is the parent run: first START, last COMPLETE.
    assert written[0]["eventType"] == "START" and written[-1]["eventType"] == "COMPLETE"
    parent = written[0]["run"]["runId"]
    children = [e for e in written if e["job"]["name"] != "shop.invocation"]
    models = [e for e in children if not e["job"]["name"].endswith(".test")]
    assert len(models) == 68  # 34 models and snapshots x (START, COMPLETE)
    for e in children:
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
    assert "dataQualityAssertions" not in facets  # an input facet, on the test job
    assert "select" in summary["job"]["facets"]["sql"]["query"]
    stg = done["shop.stg_orders"]
    assert stg["inputs"][0]["name"].endswith("tests/fixtures/golden/raw/orders.parquet")


def test_assertions_are_reported_by_one_test_job_per_relation(delivered):
    written, _ = delivered
    done = {e["job"]["name"]: e for e in written if e["eventType"] in ("COMPLETE", "FAIL")}
    job = done["shop.customer_order_summary.test"]
    assert job["eventType"] == "COMPLETE"
    assert job["job"]["facets"]["jobType"]["jobType"] == "TEST"
    (read,) = job["inputs"]
    assert read["name"] == done["shop.customer_order_summary"]["outputs"][0]["name"]
    assertions = {a["name"]: a for a in read["inputFacets"]["dataQualityAssertions"]["assertions"]}
    unique = assertions["unique_customer_order_summary_customer_id"]
    assert unique["assertion"] == "unique" and unique["column"] == "customer_id"
    assert unique["success"] is True and unique["severity"] == "error" and unique["actual"] == "0"
    assert unique["contentType"] == "sql" and "customer_order_summary" in unique["content"]
    # Source assertions come first, read the raw file.
    source = done["shop.shop.orders.test"]
    assert source["inputs"][0]["name"].endswith("tests/fixtures/golden/raw/orders.parquet")
    # Every relation with assertions in the project has its test job.
    tested = {e["job"]["name"] for e in written if e["job"]["name"].endswith(".test")}
    assert len(tested) == 31


@pytest.mark.parametrize("mutate, problem", [
    (lambda e: e["run"].update(runId="not-a-uuid"), "UUID"),
    (lambda e: e.update(eventType="DONE"), "DONE"),
    (lambda e: e["job"].pop("name"), "requires name"),
    (lambda e: e["job"].update(owner="x"), "no such field"),
    (lambda e: e["run"]["facets"]["parent"].update(
        _schemaURL="https://openlineage.io/spec/facets/9-9-9/ParentRunFacet.json#/$defs/ParentRunFacet"), "9-9-9"),
    (lambda e: e["outputs"][0]["facets"]["schema"]["fields"][0].update(type=3), "expected str"),
])
def test_the_official_model_rejects_a_broken_event(delivered, mutate, problem):
    written, _ = delivered
    event = json.loads(json.dumps(next(e for e in written if e["job"]["name"] == "shop.fct_orders")))
    official_openlineage.validate(event)
    mutate(event)
    with pytest.raises(official_openlineage.Invalid, match=problem):
        official_openlineage.validate(event)
