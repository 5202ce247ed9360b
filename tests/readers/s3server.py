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
import threading

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

    def _wsgi(self, environ, start_response):
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
