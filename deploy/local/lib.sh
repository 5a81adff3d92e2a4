# Shared helpers for the local-service scripts. Sourced, not run.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL_DIR="${AISHA_LOCAL_DIR:-$REPO_ROOT/.local}"
mkdir -p "$LOCAL_DIR"

# A free TCP port on loopback: no fixed ports, so two checkouts never clash.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Succeeds when nothing listens on 127.0.0.1:$1 (a stopped service may then take its old port back).
port_free() {
    # SO_REUSEADDR as servers set it: connections of the stopped server in TIME_WAIT do not count.
    python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); s.close()' "$1" 2>/dev/null
}

log() { printf '%s\n' "$*" >&2; }
