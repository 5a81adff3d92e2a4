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
if ! command -v moto_server >/dev/null || ! python3 -c 'import flask, flask_cors, moto.server, PIL' 2>/dev/null; then
    log "installing moto[server] and pillow from PyPI"
    python3 -m pip install -q "moto[server]" pillow
    hash -r
fi
