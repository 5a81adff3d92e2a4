#!/usr/bin/env bash
# `make demo`: one user's whole journey, locally and offline. Builds Aisha; starts PostgreSQL,
# the S3 server (moto, SigV4 enforced), the Sandbox (Telegram + FAL stand-ins), aisha-server
# and two aisha-workers; plays a user through the real webhook (start → create → 12 photos →
# train → ready → generate 2 images); prints the chat as the user saw it and where things
# ended up; stops everything it started. Exits non-zero if any step fails.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

pids=()
admin_url=""; demo_db=""
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$demo_db" ]; then psql "$admin_url" -qc "DROP DATABASE IF EXISTS $demo_db WITH (FORCE)" >/dev/null 2>&1 || true; fi
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
# A database of its own, so what earlier runs left behind cannot get in the way.
admin_url="$AISHA_DATABASE_URL"
demo_db="aisha_demo_$(date +%s)"
psql "$admin_url" -qc "CREATE DATABASE $demo_db"
AISHA_DATABASE_URL="$(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' "$AISHA_DATABASE_URL" "$demo_db")"
export AISHA_DATABASE_URL
"$bin/aisha" migrate 2>/dev/null | tail -1

step "the Sandbox (Telegram Bot API + FAL), aisha-server, two aisha-workers"
server_port="$(free_port)"; sandbox_port="$(free_port)"
sandbox="http://127.0.0.1:$sandbox_port"
secret="demo_$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
logs="$LOCAL_DIR/demo-logs"; mkdir -p "$logs"
"$bin/aisha" sandbox --port "$sandbox_port" --webhook-url "http://127.0.0.1:$server_port/telegram/webhook" \
    --secret-token "$secret" --training-seconds 3 > "$logs/sandbox.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do grep -q "listening" "$logs/sandbox.log" 2>/dev/null && break; sleep 0.1; done
token="$(sed -n 's/^AISHA_TELEGRAM_BOT_TOKEN=//p' "$logs/sandbox.log")"
fal_key="$(sed -n 's/^FAL_KEY=//p' "$logs/sandbox.log")"
telegram_api="$(sed -n 's/^AISHA_TELEGRAM_API_URL=//p' "$logs/sandbox.log")"  # the Bot API's own port
export AISHA_TELEGRAM_WEBHOOK_SECRET="$secret" AISHA_TELEGRAM_BOT_TOKEN="$token" AISHA_TELEGRAM_API_URL="${telegram_api:-$sandbox}" \
    AISHA_FAL_JWKS_URL="$sandbox/.well-known/jwks.json" FAL_KEY="$fal_key" FAL_QUEUE_URL="$sandbox" FAL_REST_URL="$sandbox" \
    AISHA_FAL_WEBHOOK_URL="http://127.0.0.1:$server_port/fal/webhook" AISHA_LOG_LEVEL=warning
AISHA_HTTP_PORT="$server_port" "$bin/aisha-server" > "$logs/server.log" 2>&1 & pids+=($!)
"$bin/aisha-worker" > "$logs/worker-1.log" 2>&1 & pids+=($!)
"$bin/aisha-worker" > "$logs/worker-2.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$server_port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
printf 'aisha-server on :%s (%s), Sandbox on :%s, logs in %s\n' "$server_port" "$(curl -fsS "http://127.0.0.1:$server_port/readyz")" "$sandbox_port" "$logs"

step "one user's journey, through the real webhook"
SANDBOX="$sandbox" python3 - <<'PY'
import io, os, sys, time, urllib.request, random
from PIL import Image

base, user = os.environ["SANDBOX"], 424242
def post(action, body):
    data = body if isinstance(body, bytes) else body.encode()
    req = urllib.request.Request(f"{base}/sandbox/users/{user}/{action}?lang=en", data=data, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode().strip()
def transcript():
    with urllib.request.urlopen(f"{base}/sandbox/transcript", timeout=10) as r:
        return r.read().decode()
def wait_for(fragment, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fragment in transcript(): return
        time.sleep(0.1)
    sys.exit(f"demo failed: the bot never said {fragment!r}\n" + transcript())
def say(text, expect):  print(f"  user: {text}");  post("text", text);  wait_for(expect)
def tap(label, expect): print(f"  user taps [{label}]");  post("press", label);  wait_for(expect)

say("/start", "I am Aisha")
tap("Create an avatar", "What should the avatar learn?")
tap("A person (portrait)", "Who is in the photos?")
tap("A woman", "Give the avatar a name")
say("Anna at work", "18 or older")
tap("I confirm", "Send 10–20 photos")
print("  user sends 12 photos")
random.seed(7)
for i in range(12):
    image = Image.new("RGB", (768, 768), tuple(random.randrange(256) for _ in range(3)))
    for _ in range(40):  # some shapes, so every photo is different
        x, y = random.randrange(700), random.randrange(700)
        image.paste(tuple(random.randrange(256) for _ in range(3)), (x, y, x + 60, y + 60))
    buffer = io.BytesIO(); image.save(buffer, "JPEG", quality=90)
    post("photo", buffer.getvalue())
wait_for("Photos: 12 of 20")
tap("Start training", "Training started")
print("  … the Sandbox's FAL trains for 3 s and calls our signed webhook")
wait_for("is ready", timeout=90)
tap("Generate", "Describe the scene")
say("walking through Tokyo at night, neon, rain", "Choose the shape")
tap("9:16", "How many images?")
tap("2 (10)", "More?")
PY

step "the chat, as the user saw it (one line per event)"
curl -fsS "$sandbox/sandbox/transcript" | grep -v '  fal  '
step "FAL, as the Sandbox saw it"
curl -fsS "$sandbox/sandbox/transcript" | grep '  fal  '

step "where things ended up"
psql "$AISHA_DATABASE_URL" -qAt -F ' | ' -c "SELECT 'avatar', name, status, photo_count || ' photos', 'LoRA: ' || lora_url FROM avatars" \
    -c "SELECT 'photo', object_key, format, size_bytes || ' bytes' FROM avatar_photos ORDER BY created_at LIMIT 3" \
    -c "SELECT 'photos in bucket avatars', count(*) FROM avatar_photos" \
    -c "SELECT 'generated', object_key, width || 'x' || height, CASE WHEN telegram_file_id IS NULL THEN 'not sent' ELSE 'sent to the chat' END FROM generated_images" \
    -c "SELECT 'ledger', amount, reason, reference FROM credit_ledger ORDER BY id" \
    -c "SELECT 'balance', balance FROM users"
python3 - <<'PY'
import os, boto3
s3 = boto3.client("s3", endpoint_url="http://" + os.environ["MINIO_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id=os.environ["MINIO_ACCESS_KEY"], aws_secret_access_key=os.environ["MINIO_SECRET_KEY"])
for bucket in ("avatars", "generated"):
    objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    print(f"S3 bucket {bucket}: {len(objects)} objects, {sum(o['Size'] for o in objects)} bytes")
PY

step "done: stopping everything this demo started"
