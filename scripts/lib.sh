# shellcheck shell=bash
# Shared by scripts/test and scripts/dev (sourced, not executed).
#
# redline's tests and demo run their own redis-server and influxd on their own ports, so all
# we need from the system is the binaries: Debian/Ubuntu packages redis-server, redis-tools,
# redis-sentinel, influxdb (InfluxDB 1.6 on Debian 12) and influxdb-client.

# Prints a section header.
redline_section() {
    printf '\n==> %s\n' "$*"
}

# The apt package that provides command $1.
redline_package_of() {
    case "$1" in
        redis-server) echo redis-server ;;
        redis-sentinel) echo redis-sentinel ;;
        redis-cli | redis-benchmark) echo redis-tools ;;
        influxd) echo influxdb ;;
        influx) echo influxdb-client ;;
        python3) echo python3 ;;
        # Debian's kubectl (1.20 on Debian 12: its kustomize is too old for
        # deploy/kubernetes, which says so; newer releases may not have the package).
        kubectl) echo kubernetes-client ;;
        *) echo "$1" ;;
    esac
}

# redline_stop_package_services PKG...: stops the services that installing PKG... may have
# started (only those: a redis or influxd that ran before is left alone). They would hold the
# default ports 6379, 26379 and 8086, and nothing of ours uses them. Every step may fail harmlessly
# (no init system in a container, service not installed, already stopped).
redline_stop_package_services() {
    local pkg service pidfiles pidfile pid
    for pkg in "$@"; do
        case "$pkg" in
            redis-server)
                service=redis-server
                pidfiles=(/run/redis/redis-server.pid /var/run/redis/redis-server.pid)
                ;;
            redis-sentinel)
                service=redis-sentinel
                pidfiles=(/run/sentinel/redis-sentinel.pid /var/run/sentinel/redis-sentinel.pid)
                ;;
            influxdb)
                service=influxdb
                pidfiles=(/run/influxdb/influxd.pid /var/run/influxdb/influxd.pid)
                ;;
            *) continue ;;
        esac
        if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
            systemctl stop "$service" >/dev/null 2>&1 || true
        fi
        if command -v service >/dev/null 2>&1; then
            service "$service" stop >/dev/null 2>&1 || true
        fi
        # Without an init system the daemon may still run: stop exactly the process the
        # package started, found through its pid file.
        for pidfile in "${pidfiles[@]}"; do
            if [[ -r "$pidfile" ]]; then
                pid=$(cat "$pidfile" 2>/dev/null || true)
                if [[ "$pid" =~ ^[0-9]+$ ]]; then
                    kill -TERM "$pid" 2>/dev/null || true
                fi
            fi
        done
    done
}

# redline_ensure_tools [--optional CMD]... CMD...
#
# Makes sure every CMD is on PATH. Missing ones are installed with apt-get when running as
# root; otherwise prints the apt-get command to run and exits 1. An --optional CMD (one whose
# package not every release has: docker-compose, kubectl) has its package
# (redline_package_of) installed best effort when it is missing, even if every CMD is
# present; without root it is only noted.
redline_ensure_tools() {
    local optional=() missing=() packages=() cmd pkg
    while [[ $# -gt 0 && "$1" == --optional ]]; do
        if ! command -v "$2" >/dev/null 2>&1; then
            optional+=("$(redline_package_of "$2")")
        fi
        shift 2
    done
    for cmd in "$@"; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            missing+=("$cmd")
            pkg=$(redline_package_of "$cmd")
            if [[ " ${packages[*]} " != *" $pkg "* ]]; then
                packages+=("$pkg")
            fi
        fi
    done
    if [[ ${#missing[@]} -eq 0 && ${#optional[@]} -eq 0 ]]; then
        return 0
    fi

    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        if [[ ${#missing[@]} -eq 0 ]]; then
            echo "note: optional ${optional[*]} not installed (sudo apt-get install -y ${optional[*]}); continuing without" >&2
            return 0
        fi
        echo "missing: ${missing[*]} (apt packages: ${packages[*]})" >&2
        echo "install them, then run this again:" >&2
        echo "  sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
        exit 1
    fi

    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    if [[ ${#packages[@]} -gt 0 ]]; then
        echo "missing: ${missing[*]} (apt packages: ${packages[*]})" >&2
        apt-get install -y --no-install-recommends "${packages[@]}"
    fi
    if [[ ${#optional[@]} -gt 0 ]]; then
        apt-get install -y --no-install-recommends "${optional[@]}" ||
            echo "note: could not install ${optional[*]}; continuing without" >&2
    fi
    redline_stop_package_services "${packages[@]}"

    for cmd in "${missing[@]}"; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            echo "error: $cmd is still missing after installing ${packages[*]}" >&2
            exit 1
        fi
    done
}

# redline_wait_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.1 s until it
# succeeds; fails with DESCRIPTION after SECONDS.
redline_wait_for() {
    local seconds=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "error: timed out after ${seconds}s waiting for $what" >&2
            return 1
        fi
        sleep 0.1
    done
}

# redline_ensure_python_module MODULE PACKAGE [WHY]: makes `import MODULE` work for python3,
# installing PACKAGE (a pip requirement, e.g. name==version) from PyPI with pip when running
# as root; otherwise prints the command, and WHY the package is needed.
redline_ensure_python_module() {
    local module=$1 package=$2 why=${3:-the compatibility tests run the real client}
    if python3 -c "import $module" >/dev/null 2>&1; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "missing: the Python package $package ($why)" >&2
        echo "install it, then run this again:" >&2
        echo "  python3 -m pip install --user '$package'" >&2
        exit 1
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends python3-pip
    fi
    # Debian's python3 refuses pip installs into the system without this flag (PEP 668).
    python3 -m pip install --quiet "$package" 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages "$package"
}
