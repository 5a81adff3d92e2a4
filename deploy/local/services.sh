#!/usr/bin/env bash
# Starts, stops or reports every local service the project needs, and writes .local/env:
#   deploy/local/services.sh start|stop|status
# `source .local/env` then gives AISHA_DATABASE_URL, AISHA_TEST_DATABASE_URL and the MINIO_* settings.
# Two PostgreSQL clusters: `main` (durable: the demo, benchmarks, development) and `test`
# (throwaway: the test suite's per-test databases; see deploy/local/postgres.sh).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$(dirname "${BASH_SOURCE[0]}")"

case "${1:-status}" in
start)
    url="$("$here/postgres.sh" start main)"
    test_url="$("$here/postgres.sh" start test --throwaway)"
    s3="$("$here/s3.sh" start)"
    {
        echo "export AISHA_DATABASE_URL='$url'"
        echo "export AISHA_TEST_DATABASE_URL='$test_url'"
        echo "export AISHA_REPO_ROOT='$REPO_ROOT'"
        echo "$s3" | sed "s/^/export /; s/=\(.*\)$/='\1'/"
    } > "$LOCAL_DIR/env"
    "$0" status
    ;;
stop)
    "$here/s3.sh" stop
    for cluster in "$LOCAL_DIR"/pg-*; do
        [ -d "$cluster" ] && "$here/postgres.sh" stop "${cluster##*/pg-}"
    done
    true
    ;;
status)
    "$here/postgres.sh" status main || true
    "$here/postgres.sh" status test || true
    "$here/s3.sh" status || true
    ;;
*)
    log "usage: $0 start|stop|status"; exit 2
    ;;
esac
