#!/usr/bin/env bash
# A real third-party S3 server for development and tests: moto's server with signature checking on.
#   deploy/local/s3.sh start|stop|status|env
# moto checks SigV4 only after INITIAL_NO_AUTH_ACTION_COUNT free requests; we spend exactly three of
# them creating an IAM user, its access key and an s3:* policy (reference/external-apis.md §6.6).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command="${1:-status}"
state="$LOCAL_DIR/s3"
mkdir -p "$state"

running() { [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; }

case "$command" in
start)
    if running; then cat "$state/env"; exit 0; fi
    command -v moto_server >/dev/null || { log "moto_server not found: run deploy/local/install-deps.sh"; exit 1; }
    port="$(free_port)"
    INITIAL_NO_AUTH_ACTION_COUNT=3 nohup moto_server -H 127.0.0.1 -p "$port" >"$state/server.log" 2>&1 &
    echo $! > "$state/pid"
    for _ in $(seq 1 100); do
        python3 - "$port" <<'PY' 2>/dev/null && break
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()
PY
        sleep 0.1
    done
    python3 - "$port" > "$state/env" <<'PY'
import json, sys, urllib.parse, urllib.request
endpoint = f"http://127.0.0.1:{sys.argv[1]}"
def iam(action, **params):
    # Unsigned IAM calls: these are the server's free (pre-auth) requests.
    body = urllib.parse.urlencode({"Action": action, "Version": "2010-05-08", **params}).encode()
    req = urllib.request.Request(endpoint + "/", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": "AWS4-HMAC-SHA256 Credential=bootstrap/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
    })
    return urllib.request.urlopen(req, timeout=10).read().decode()
iam("CreateUser", UserName="aisha")
xml = iam("CreateAccessKey", UserName="aisha")
import re
key = re.search(r"<AccessKeyId>(.*?)</AccessKeyId>", xml).group(1)
secret = re.search(r"<SecretAccessKey>(.*?)</SecretAccessKey>", xml).group(1)
policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
iam("PutUserPolicy", UserName="aisha", PolicyName="s3-all", PolicyDocument=policy)
print(f"MINIO_ENDPOINT=127.0.0.1:{sys.argv[1]}")
print(f"MINIO_ACCESS_KEY={key}")
print(f"MINIO_SECRET_KEY={secret}")
print("MINIO_REGION=us-east-1")
print("MINIO_SECURE=false")
PY
    cat "$state/env"
    ;;
stop)
    if running; then kill "$(cat "$state/pid")"; for _ in $(seq 1 50); do running || break; sleep 0.1; done; fi
    rm -f "$state/pid"
    ;;
status)
    if running; then echo "s3 (moto): running, $(grep ENDPOINT "$state/env")"; else echo "s3 (moto): stopped"; exit 3; fi
    ;;
env)
    cat "$state/env"
    ;;
*)
    log "usage: $0 start|stop|status|env"; exit 2
    ;;
esac
