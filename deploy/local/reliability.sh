#!/usr/bin/env bash
# `make reliability`: the reliability suite (docs/reliability.md). Builds Aisha in release mode,
# starts the local PostgreSQL and S3 servers, runs `aisha reliability` (real aisha-server and
# aisha-worker processes; the Sandbox for Telegram and FAL) and stops everything it started.
# Arguments go to `aisha reliability` (case names, --quick).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

trap 'deploy/local/services.sh stop >/dev/null 2>&1 || true' EXIT
swift build -c release 2>&1 | tail -1
deploy/local/services.sh start
# shellcheck disable=SC1091
source "$LOCAL_DIR/env"
export AISHA_LOCAL_DIR="$LOCAL_DIR"
"$(swift build -c release --show-bin-path)/aisha" reliability "$@"
