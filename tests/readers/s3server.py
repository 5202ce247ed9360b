"""A real S3 API server on loopback for the tests: moto's S3 server (the
`moto[server]` package, its werkzeug application) on a free port, run in
the test process so that its stored objects outlive a stop and restart of
the listener.

Authentication is on: the first few requests (unauthenticated) create an
IAM user with an access key and the buckets over HTTP; every later request
must be signed with that key, so wrong credentials are refused as by AWS.

`stop_after_puts(n)` makes the server go away after `n` more uploads of
model Parquet objects (outside `_wh/`), as a server that stops in the middle of a build: the next
upload gets an error and the listener closes, so retries are refused."""

import logging
import os
import socket
import struct
import threading
import time

import boto3
import moto.settings
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

BUCKETS = ["shop-warehouse", "shop-raw"]
logging.getLogger("werkzeug").setLevel(logging.ERROR)
POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.app = DomainDispatcherApplication(create_backend_app)
        self.server = None
        self.thread = None
        self.puts_left = None
        self.fault = None

    def inject(self, match, status=None, count=1, delay=0.0, reset=False):
        """The next `count` requests that `match(environ)` accepts fail, as a
        failing S3 does: answered with `status` (500, 503...), held `delay`
        seconds first (beyond a client's timeout), or cut by a TCP reset."""
        self.fault = {"match": match, "status": status, "count": count, "delay": delay, "reset": reset, "hits": 0}

    def clear(self):
        hits = self.fault["hits"] if self.fault else 0
        self.fault = None
        return hits

    def _faulted(self, environ, start_response):
        f = self.fault
        if not f or f["count"] <= 0 or not f["match"](environ):
            return None
        f["count"] -= 1
        f["hits"] += 1
        if f["delay"]:
            time.sleep(f["delay"])
        if f["reset"]:
            sock = environ["werkzeug.socket"]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            raise ConnectionResetError("injected reset")
        if f["status"] is None:
            return None  # only slow: answered late, by the store
        start_response(f"{f['status']} Injected", [("Content-Type", "application/xml")])
        return [b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"]

    def _wsgi(self, environ, start_response):
        faulted = self._faulted(environ, start_response)
        if faulted is not None:
            return faulted
        if self.puts_left is not None and environ["REQUEST_METHOD"] == "PUT" \
                and environ.get("PATH_INFO", "").endswith(".parquet") and "/_wh/" not in environ["PATH_INFO"]:
            self.puts_left -= 1
            if self.puts_left < 0:
                self.puts_left = None
                threading.Thread(target=self.stop, daemon=True).start()
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"server going away"]
        return self.app(environ, start_response)

    def listen(self):
        self.server = make_server("127.0.0.1", self.port, self._wsgi, threaded=True,
                                  request_handler=MotoRequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def start(self):
        # Requests before authentication starts: the bootstrap below.
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 3 + len(BUCKETS)
        self.listen()
        anonymous = dict(aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1", **anonymous)
        iam.create_user(UserName="wh")
        iam.put_user_policy(UserName="wh", PolicyName="all", PolicyDocument=POLICY)
        key = iam.create_access_key(UserName="wh")["AccessKey"]
        self.credentials = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", **anonymous)
        for bucket in BUCKETS:
            s3.create_bucket(Bucket=bucket)
        return self

    def stop(self):
        if self.server:
            server, self.server = self.server, None
            server.shutdown()
            server.server_close()

    def stop_after_puts(self, n):
        self.puts_left = n

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"])

    def session_credentials(self):
        """Temporary credentials with a session token, from STS AssumeRole on
        a role the IAM user creates, as `AWS_*` variables: the server checks
        requests signed with them as it checks the user's own."""
        auth = dict(endpoint_url=self.endpoint, region_name="us-east-1",
                    aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"])
        iam = boto3.client("iam", **auth)
        trust = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, '
                 '"Action": "sts:AssumeRole"}]}')
        role = iam.create_role(RoleName=f"wh-{free_port()}", AssumeRolePolicyDocument=trust)["Role"]
        iam.put_role_policy(RoleName=role["RoleName"], PolicyName="all", PolicyDocument=POLICY)
        c = boto3.client("sts", **auth).assume_role(RoleArn=role["Arn"], RoleSessionName="wh")["Credentials"]
        return {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
                "AWS_SESSION_TOKEN": c["SessionToken"]}

    def env(self, **extra):
        """The environment `wh` runs with: the standard AWS variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.credentials, AWS_ENDPOINT_URL=self.endpoint, AWS_ALLOW_HTTP="true", AWS_REGION="us-east-1")
        env.update(extra)
        return env

    def keys(self, bucket, prefix=""):
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def get(self, bucket, key):
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def put_file(self, bucket, key, path):
        self.client().upload_file(str(path), bucket, key)
