"""Credentials never leave the environment they came from: a build on an S3
warehouse (a real S3 API server on loopback that checks signatures) with a
session token, an OpenLineage endpoint and an alert webhook whose URLs
carry user info, a path token and a query token, and a `DBT_ENV_SECRET_`
variable, then the docs site, the governance report and a build with a
wrong secret key. No secret appears in anything wh printed or wrote: its
output, `target/` (compiled SQL, artifacts, lineage events, docs, report),
every object of the warehouse, and every request body the endpoints
received. Each secret is first shown to reach the place it is used (the
S3 requests are signed with it, the endpoints are called), so the test
fails if a secret were simply never passed."""

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ROOT, WH

BUCKET = "shop-warehouse"
PREFIX = "secrets"
FIXTURE = ROOT / "tests" / "fixtures" / "projects" / "hostile"
OL_PASSWORD = "ol-pass-7f3a9c"
OL_TOKEN = "ol-query-token-51d2"
OL_API_KEY = "ol-api-key-93be"
HOOK_PATH_TOKEN = "T000/B000/hookpathtoken9e8d"
HOOK_TOKEN = "hook-query-token-c4b7"


class Endpoint:
    """A loopback HTTP endpoint that keeps each request's path, headers
    and body."""

    def __init__(self):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.path, headers, body.decode()))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]


def everything_written(s3, project):
    """Each file under the project but the raw data, and each object of
    the warehouse, as (where, text)."""
    out = []
    for path in project.rglob("*"):
        if path.is_file() and "raw" not in path.relative_to(project).parts:
            out.append((str(path.relative_to(project)), path.read_bytes().decode("latin-1")))
    for key in s3.keys(BUCKET, f"{PREFIX}/"):
        out.append((f"s3://{BUCKET}/{key}", s3.get(BUCKET, key).decode("latin-1")))
    return out


@pytest.fixture(scope="module")
def run(s3, tmp_path_factory):
    project = tmp_path_factory.mktemp("secrets") / "p"
    shutil.copytree(FIXTURE, project)
    lineage, hook = Endpoint(), Endpoint()
    (project / "wh_project.yml").write_text(
        f"name: hostile\ntargets:\n  dev:\n    warehouse: s3://{BUCKET}/{PREFIX}\n    threads: 2\n"
        "    s3: {region: us-east-1}\n"
        "alerts:\n  on: [warning, failure]\n  webhook_env: WH_TEST_HOOK\n")
    session = s3.session_credentials()
    secrets = {
        "access key id": session["AWS_ACCESS_KEY_ID"],
        "secret key": session["AWS_SECRET_ACCESS_KEY"],
        "session token": session["AWS_SESSION_TOKEN"],
        "OpenLineage password": OL_PASSWORD,
        "OpenLineage token": OL_TOKEN,
        "OpenLineage API key": OL_API_KEY,
        "webhook path token": HOOK_PATH_TOKEN,
        "webhook token": HOOK_TOKEN,
    }
    env = s3.env(
        **session,
        OPENLINEAGE_URL=f"http://wh:{OL_PASSWORD}@127.0.0.1:{lineage.port}/?api_key={OL_TOKEN}",
        OPENLINEAGE_API_KEY=OL_API_KEY,
        WH_TEST_HOOK=f"http://127.0.0.1:{hook.port}/services/{HOOK_PATH_TOKEN}?token={HOOK_TOKEN}",
    )
    outputs, tokens = [], []
    # Every request's session token, seen by the server (never a fault).
    s3.inject(lambda environ: tokens.append(environ.get("HTTP_X_AMZ_SECURITY_TOKEN")) and False, count=10**9)
    for args in (["build"], ["docs", "generate"], ["report"], ["build", "--log-format", "json"]):
        out = subprocess.run([str(WH), *args], cwd=project, env=env, capture_output=True, text=True)
        assert out.returncode == 0, (args, out.stderr)
        outputs.append((" ".join(args), out.stdout + out.stderr))
    s3.clear()
    wrong = dict(env, AWS_SECRET_ACCESS_KEY="wrong" + secrets["secret key"][5:])
    secrets["wrong secret key"] = wrong["AWS_SECRET_ACCESS_KEY"]
    out = subprocess.run([str(WH), "build"], cwd=project, env=wrong, capture_output=True, text=True)
    outputs.append(("build with a wrong key", out.stdout + out.stderr))
    return {"project": project, "secrets": secrets, "outputs": outputs, "wrong": out, "tokens": tokens,
            "lineage": lineage, "hook": hook}


def test_each_secret_reaches_where_it_is_used(run):
    # Every S3 request carried the session token.
    assert len(run["tokens"]) > 20 and set(run["tokens"]) == {run["secrets"]["session token"]}, set(run["tokens"])
    # The S3 server checks signatures: a wrong key fails the build, clearly.
    assert run["wrong"].returncode == 2, run["wrong"].stderr
    assert "credentials were refused" in run["wrong"].stderr, run["wrong"].stderr
    # Both endpoints were called, at the path and query the URL names.
    events = run["lineage"].requests
    assert events and all(p == f"/api/v1/lineage?api_key={OL_TOKEN}" for p, _, _ in events), events[:1]
    assert all(h.get("authorization") == f"Bearer {OL_API_KEY}" for _, h, _ in events), events[0][1]
    hooks = run["hook"].requests
    assert len(hooks) == 2 and hooks[0][0] == f"/services/{HOOK_PATH_TOKEN}?token={HOOK_TOKEN}", hooks
    assert json.loads(hooks[0][2])["status"] == "warning"


def test_no_secret_appears_in_output_files_objects_or_requests(s3, run):
    places = [(f"output of `wh {what}`", text) for what, text in run["outputs"]]
    places += everything_written(s3, run["project"])
    for endpoint in ("lineage", "hook"):
        places += [(f"{endpoint} request body", body) for _, _, body in run[endpoint].requests]
    assert len(places) > 20, [where for where, _ in places]
    leaks = [(name, where) for where, text in places for name, value in run["secrets"].items() if value in text]
    assert leaks == [], leaks
