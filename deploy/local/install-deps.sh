#!/usr/bin/env bash
# Installs what building, testing and the demo need, when it is missing (Debian 12):
# the four C libraries' -dev packages, pkg-config, PostgreSQL 15, wrk and unzip; moto[server].
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

apt_packages=(libpq-dev libcurl4-openssl-dev libzip-dev libssl-dev pkg-config postgresql wrk unzip zip)
missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# moto 5.2.1 (on some images) rebuilds the canonical request with its own quoting and rejects
# correctly signed requests whose key holds `&` or whose list prefix holds `/`; 5.2.5 does not.
moto_ok() {
    python3 - <<'PY' 2>/dev/null
import flask, flask_cors, moto.server, PIL, moto
version = tuple(int(p) for p in moto.__version__.split(".")[:3])
raise SystemExit(0 if version >= (5, 2, 5) else 1)
PY
}
if ! command -v moto_server >/dev/null || ! moto_ok; then
    log "installing moto[server]>=5.2.5 and pillow from PyPI"
    python3 -m pip install -q --upgrade "moto[server]>=5.2.5" pillow
    hash -r
fi
