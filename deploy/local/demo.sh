#!/usr/bin/env bash
# `make demo`: builds Aisha, starts PostgreSQL, the S3 server, aisha-server and an aisha-worker
# on this machine, shows what answers, and stops everything it started.
# (The full user journey through the Sandbox arrives with the bot; see the issues.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    deploy/local/services.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "build"
swift build 2>&1 | tail -1
bin="$(swift build --show-bin-path)"

step "local services (PostgreSQL 15 and moto S3 with signature checks)"
deploy/local/services.sh start
# shellcheck disable=SC1091
source "$LOCAL_DIR/env"

step "migrations"
"$bin/aisha" migrate
"$bin/aisha" migrate   # a second run is a no-op

step "aisha-server and aisha-worker"
port="$(free_port)"
AISHA_HTTP_PORT="$port" AISHA_LOG_LEVEL=warning "$bin/aisha-server" & pids+=($!)
AISHA_LOG_LEVEL=info "$bin/aisha-worker" & pids+=($!)
sleep 1
"$bin/aisha" jobs stats
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
printf 'GET /healthz -> %s\n' "$(curl -fsS "http://127.0.0.1:$port/healthz")"
printf 'GET /readyz  -> %s\n' "$(curl -fsS "http://127.0.0.1:$port/readyz")"

step "S3 round trip through moto with SigV4 enforced"
python3 - <<'PY'
import os, boto3, botocore
kw = dict(endpoint_url="http://" + os.environ["MINIO_ENDPOINT"], region_name="us-east-1")
s3 = boto3.client("s3", aws_access_key_id=os.environ["MINIO_ACCESS_KEY"], aws_secret_access_key=os.environ["MINIO_SECRET_KEY"], **kw)
s3.create_bucket(Bucket="avatars")
s3.put_object(Bucket="avatars", Key="demo/hello.txt", Body=b"hi", ContentType="text/plain")
print("put+get with the right key ->", s3.get_object(Bucket="avatars", Key="demo/hello.txt")["Body"].read())
bad = boto3.client("s3", aws_access_key_id=os.environ["MINIO_ACCESS_KEY"], aws_secret_access_key="wrong", **kw)
try:
    bad.list_objects_v2(Bucket="avatars")
except botocore.exceptions.ClientError as e:
    print("wrong secret ->", e.response["Error"]["Code"])
PY

step "done: stopping everything this demo started"
