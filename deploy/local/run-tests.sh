#!/usr/bin/env bash
# `make test`: starts the local PostgreSQL and S3 servers, runs every test against them, and
# stops everything it started, whatever happens.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

trap 'deploy/local/services.sh stop >/dev/null 2>&1 || true' EXIT
deploy/local/services.sh start
# shellcheck disable=SC1091
source "$LOCAL_DIR/env"
started=$(date +%s)
swift test "$@"
echo "make test: swift test finished in $(( $(date +%s) - started )) s"
