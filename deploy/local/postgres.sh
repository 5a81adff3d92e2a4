#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster on loopback for development and tests.
#   deploy/local/postgres.sh start|stop|restart|status|url|destroy [NAME] [--throwaway]
# NAME (default "main") picks an independent cluster; each gets its own free port, password and data.
# --throwaway (when the cluster is created) turns fsync off: for the test suite's cluster, whose
# databases live for one test. Durable clusters stay as PostgreSQL ships them.
# As root the server runs as the `postgres` user (initdb refuses root).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command="${1:-status}"
name="${2:-main}"
profile="${3:-}"
case "$profile" in ""|--throwaway) ;; *) log "unknown option $profile"; exit 2 ;; esac
state="$LOCAL_DIR/pg-$name"
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$bindir/pg_ctl" ] || { log "PostgreSQL server binaries not found: run deploy/local/install-deps.sh"; exit 1; }

if [ "$(id -u)" = 0 ]; then
    # The data folder must belong to `postgres`, and every folder above it must let it in;
    # a checkout under a private home folder would not, so root keeps the data under /var/tmp.
    data="/var/tmp/aisha-local/$(printf '%s' "$state" | sha256sum | cut -c1-16)/data"
    as_db_owner() { runuser -u postgres -- "$@"; }
else
    data="$state/data"
    as_db_owner() { "$@"; }
fi

pg_ctl_() { as_db_owner "$bindir/pg_ctl" -D "$data" "$@"; }
# Server options given at every start (so clusters made by older versions of this script get
# them too). The test suite runs many in-process servers and workers at once, each with a pool.
server_options="-c max_connections=1000"
running() { [ -f "$data/postmaster.pid" ] && pg_ctl_ status >/dev/null 2>&1; }
url() { echo "postgres://aisha:$(cat "$state/password")@127.0.0.1:$(cat "$state/port")/aisha"; }

init_cluster() {
    mkdir -p "$state"
    [ -f "$state/password" ] || python3 -c 'import secrets; print(secrets.token_hex(16))' > "$state/password"
    mkdir -p "$(dirname "$data")"
    rm -rf "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$(dirname "$data")"
    local pwfile; pwfile="$(mktemp)"; cat "$state/password" > "$pwfile"; chmod 644 "$pwfile"
    as_db_owner "$bindir/initdb" -D "$data" -U aisha --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >"$state/initdb.log" 2>&1 || { cat "$state/initdb.log" >&2; rm -f "$pwfile"; exit 1; }
    rm -f "$pwfile"
    # Durable settings (fsync and synchronous_commit stay on: benchmarks must measure real commits).
    cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
shared_buffers = 256MB
logging_collector = off
CONF
    # The test suite creates and drops a database per test. In PostgreSQL 15 every DROP DATABASE
    # forces a checkpoint, and the first one fsyncs every file of every database created so far
    # (14,540 files, 16 s here): the tests that finish first wait for it, past their statement
    # timeout on a slower disk. Without fsync a commit is still a commit (WAL written before the
    # answer); only a crash of the whole machine could lose it, and this cluster is discarded.
    if [ "$profile" = --throwaway ]; then
        echo "fsync = off  # throwaway cluster: see deploy/local/postgres.sh" >> "$data/postgresql.conf"
    fi
}

case "$command" in
start)
    [ -f "$data/PG_VERSION" ] && [ -f "$state/password" ] || init_cluster
    if running; then url; exit 0; fi
    # A restarted cluster keeps its port when it can, so clients reconnect to the same URL.
    if [ -f "$state/port" ] && port_free "$(cat "$state/port")"; then port="$(cat "$state/port")"; else port="$(free_port)"; fi
    echo "$port" > "$state/port"
    pg_ctl_ -w -t 60 -l "$data/server.log" -o "-p $port $server_options" start >/dev/null 2>&1 || { tail -20 "$data/server.log" >&2; exit 1; }
    as_db_owner "$bindir/psql" -h "$data" -p "$port" -U aisha -d postgres -qtAc \
        "SELECT 1 FROM pg_database WHERE datname = 'aisha'" | grep -q 1 ||
        as_db_owner "$bindir/createdb" -h "$data" -p "$port" -U aisha aisha
    url
    ;;
stop)
    if running; then pg_ctl_ -w -m fast stop >/dev/null; fi
    ;;
restart)
    running || { log "cluster $name is not running"; exit 1; }
    pg_ctl_ -w -t 60 -m fast -l "$data/server.log" -o "-p $(cat "$state/port") $server_options" restart >/dev/null 2>&1 || { tail -20 "$data/server.log" >&2; exit 1; }
    ;;
status)
    if running; then echo "postgres $name: running on 127.0.0.1:$(cat "$state/port")"; else echo "postgres $name: stopped"; exit 3; fi
    ;;
url)
    url
    ;;
destroy)
    if running; then pg_ctl_ -w -m immediate stop >/dev/null; fi
    rm -rf "$data" "$state"
    ;;
*)
    log "usage: $0 start|stop|restart|status|url|destroy [NAME]"; exit 2
    ;;
esac
