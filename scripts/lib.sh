# Shared helpers for the host-setup scripts. Source it; do not run it.
# Everything here is idempotent: it installs or starts only what is missing.

# shellcheck shell=bash
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${LEADER_NODE_CACHE_DIR:-$REPO_ROOT/.cache}"
VENV="${VENV:-$REPO_ROOT/.venv}"

# Names of everything this project creates in Docker. Leftovers are found by these prefixes.
CLUSTER_NAME_RE='leader-node-[0-9]+'   # make cluster: containers leader-node-1..5
CLUSTER_NETWORK="leader-node-net"      # make cluster: network
CLUSTER_SUBNET="172.30.77.0/24"        # addresses .11-.15, see inventory/host_vars
MOLECULE_PREFIX="lnmol-"               # Molecule: containers lnmol-<scenario>-N, network lnmol-<scenario>-net
IMAGE_REPO="leader-node-systemd"       # base image, tagged by the hash of its recipe

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "$1 needs root (it installs packages and runs Docker)"
}

# now_s: seconds since the epoch, for deadlines.
now_s() { date +%s; }

apt_install() {
    need_root "installing $*"
    # Once per run, also across the scripts this one calls.
    if [[ ${LEADER_NODE_APT_UPDATED:-0} != 1 ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        export LEADER_NODE_APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ensure_docker: the Docker engine from Debian's packages, installed and running.
ensure_docker() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        apt_install docker.io iptables
    fi
    command -v iptables >/dev/null 2>&1 || apt_install iptables
    need_root "starting dockerd"
    # A killed dockerd leaves its pid file behind and the next one refuses to start.
    local pidfile=/var/run/docker.pid pid
    if [[ -f $pidfile ]]; then
        pid="$(cat "$pidfile" 2>/dev/null || true)"
        if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
            log "removing stale $pidfile (pid '${pid}' is not alive)"
            rm -f "$pidfile"
        fi
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        log "starting dockerd (log: /var/log/leader-node-dockerd.log)"
        # setsid: the daemon outlives this script and its make.
        setsid dockerd >/var/log/leader-node-dockerd.log 2>&1 </dev/null &
    fi
    local deadline=$(($(now_s) + 60))
    until docker info >/dev/null 2>&1; do
        if (($(now_s) > deadline)); then
            tail -n 30 /var/log/leader-node-dockerd.log >&2 || true
            die "dockerd did not answer within 60 s"
        fi
        sleep 0.5
    done
    log "dockerd is up ($(docker version --format '{{.Server.Version}}'))"
}

# image_recipe / image_ref: the base image is named by a hash of everything that shapes it.
IMAGE_PACKAGES="systemd,systemd-sysv,dbus,python3,python3-venv,iptables,iproute2,procps,libpam-systemd,polkitd"
image_recipe() {
    printf 'suite=bookworm variant=minbase packages=%s\n' "$IMAGE_PACKAGES"
    cat "$REPO_ROOT/scripts/build-image.sh"
}
image_ref() {
    printf '%s:%s' "$IMAGE_REPO" "$(image_recipe | sha256sum | cut -c1-12)"
}

# debian_mirror: the Debian mirror to debootstrap from: $LEADER_NODE_DEBIAN_MIRROR when set, else the
# first Debian mirror this machine's apt configuration names (deb822 *.sources or one-line *.list /
# sources.list; an entry counts when its suite is a Debian release name and it has the component main,
# so security, backports and third-party repositories such as Docker's are skipped). No built-in
# fallback: without one it stops and says what to set.
DEBIAN_SUITES_RE='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldstable|stable|testing|unstable)(-updates)?$'
debian_mirror() {
    if [[ -n ${LEADER_NODE_DEBIAN_MIRROR:-} ]]; then
        printf '%s' "$LEADER_NODE_DEBIAN_MIRROR"
        return 0
    fi
    local m="" file etc=${APT_ETC:-/etc/apt} # APT_ETC: another apt directory (tests)
    for file in "$etc"/sources.list.d/*.sources; do
        [[ -f $file ]] || continue
        # deb822: stanzas separated by blank lines; Types, URIs and Suites may come in any order.
        m="$(awk -v re="$DEBIAN_SUITES_RE" '
            function flush(   i, n, s) {
                if (found) return
                if (types ~ /(^| )deb( |$)/ && comps ~ /(^| )main( |$)/ && enabled !~ /^[Nn]o/ \
                    && uri ~ /^(https?|file):/) {
                    n = split(suites, s, " ")
                    for (i = 1; i <= n; i++) if (s[i] ~ re) { print uri; found = 1; exit }
                }
                types = ""; uri = ""; suites = ""; comps = ""; enabled = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^#/ { next }
            tolower($1) == "types:" { $1 = ""; types = $0 " " }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            tolower($1) == "components:" { $1 = ""; comps = $0 " " }
            tolower($1) == "enabled:" { enabled = $2 }
            END { flush() }' "$file")"
        [[ -n $m ]] && break
    done
    if [[ -z $m ]]; then
        for file in "$etc"/sources.list "$etc"/sources.list.d/*.list; do
            [[ -f $file ]] || continue
            # one-line: deb [options] URI SUITE COMPONENT...
            m="$(awk -v re="$DEBIAN_SUITES_RE" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) while (i <= NF && $i !~ /\]$/) i++
                    if ($i ~ /^\[/ || $i ~ /\]$/) i++
                    main = 0
                    for (j = i + 2; j <= NF && $j !~ /^#/; j++) if ($j == "main") main = 1
                    if (main && $i ~ /^(https?|file):/ && $(i + 1) ~ re) { print $i; exit }
                }' "$file")"
            [[ -n $m ]] && break
        done
    fi
    if [[ -z $m ]]; then
        die "no Debian mirror to debootstrap from: this machine's apt configuration names none. Set
  LEADER_NODE_DEBIAN_MIRROR=http://<your mirror>/debian, or name the mirror in apt, e.g. in
  /etc/apt/sources.list.d/debian.sources: 'Types: deb', 'URIs: http://<your mirror>/debian',
  'Suites: bookworm', 'Components: main' (or a line 'deb http://<your mirror>/debian bookworm main'
  in /etc/apt/sources.list)"
    fi
    printf '%s' "$m"
}

# remove_containers_matching REGEX: force-remove every container whose whole name matches REGEX.
remove_containers_matching() {
    local regex=$1 ids
    ids="$(docker ps -aq --filter "name=^/${regex}\$")"
    if [[ -n $ids ]]; then
        log "removing containers matching ${regex}"
        # shellcheck disable=SC2086
        docker rm -f $ids >/dev/null
    fi
}

# remove_networks_matching REGEX: remove every network whose whole name matches REGEX.
remove_networks_matching() {
    local regex=$1 name
    for name in $(docker network ls --format '{{.Name}}' | grep -E "^${regex}\$" || true); do
        log "removing network $name"
        docker network rm "$name" >/dev/null
    done
}

# The capability set that runs systemd as PID 1 here: --privileged fails on these machines
# (docs/deploy.md, "systemd in a container").
SYSTEMD_RUN_FLAGS=(
    --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined
    --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw
    --tmpfs /run --tmpfs /run/lock --stop-signal SIGRTMIN+3
)

# wait_systemd_running NAME DEADLINE_S: poll until systemd in the container has finished booting.
wait_systemd_running() {
    local name=$1 deadline=$(($(now_s) + $2)) state=""
    while true; do
        state="$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)"
        case $state in
            running) return 0 ;;
            degraded)
                docker exec "$name" systemctl --failed --no-legend >&2 || true
                die "$name booted degraded"
                ;;
        esac
        (($(now_s) <= deadline)) || die "$name: systemd not running after $2 s (state: '${state}')"
        sleep 0.25
    done
}

# ensure_venv: the controller's pinned tools (ansible, molecule, testinfra) and the project itself.
# `make venv` is a no-op when its stamp is current; a fresh Debian first needs python3-venv.
ensure_venv() {
    if [[ ! -x $VENV/bin/python ]]; then
        python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    fi
    make -s --no-print-directory -C "$REPO_ROOT" venv
}

# await_leader_and_status INVENTORY HOST VIA URL...: wait until the nodes at URL... agree on one leader,
# with the deadline derived from the cluster's own timers (HOST's election and failure timeouts in
# INVENTORY), print the agreement and `leaderctl status`, and set LEADER to the leader's id. VIA runs
# the commands that reach the nodes where they are reachable ("" here; scripts/vm.sh for the VMs'
# network namespace).
await_leader_and_status() {
    local inventory=$1 host=$2 via=$3 election failure agreement
    shift 3
    local -a run=()
    [[ -n $via ]] && run=("$via")
    read -r election failure < <("$VENV/bin/ansible-inventory" -i "$inventory" --host "$host" |
        "$VENV/bin/python" -c 'import json, sys; v = json.load(sys.stdin)
print(v.get("leader_node_election_timeout", "5s"), v.get("leader_node_failure_timeout", "3s"))')
    log "waiting for a leader (election timeout $election, failure timeout $failure)"
    agreement="$("${run[@]}" "$VENV/bin/python" scripts/wait_for_leader.py --election-timeout "$election" \
        --failure-timeout "$failure" "$@")"
    printf '%s\n' "$agreement"
    LEADER="$(sed -n 's/^leader: node \([0-9][0-9]*\) .*/\1/p' <<<"$agreement")"

    log "leaderctl status"
    "${run[@]}" "$VENV/bin/leaderctl" status "$@"
}
