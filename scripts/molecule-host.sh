#!/usr/bin/env bash
# Molecule's dependency step (molecule/base.yml) for every scenario: make this machine ready and clean.
#   scripts/molecule-host.sh SCENARIO
#  - refuse to start while another Molecule run is active here (the scenarios share lnmol-net)
#  - leftovers of an aborted Molecule run: containers lnmol-* of other scenarios and the network
#    lnmol-net once nothing uses it (this scenario's own containers are left to Molecule's destroy
#    step, which `molecule test` runs next, so `molecule converge` can still iterate). Molecule runs
#    one scenario at a time on a machine; `make cluster` uses other names and another subnet.
#  - the Docker engine installed and running, the systemd base image built once (tagged :current)
#  - the wheelhouse of this checkout, which the role ships to the hosts
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

scenario="${1:?usage: molecule-host.sh SCENARIO}"
need_root "Molecule on local systemd containers"

# The scenarios share one network and its addresses: a second Molecule run on this machine would
# tear down the first one's hosts. Refuse instead (our own molecule process is one of our ancestors).
ancestors=" $$ "
pid=$$
while [[ $pid -gt 1 ]]; do
    pid="$(ps -o ppid= -p "$pid" | tr -d ' ')"
    ancestors+="$pid "
done
for other in $(pgrep -f '(^|/)molecule( |$)' || true); do
    [[ $ancestors == *" $other "* ]] && continue
    die "another Molecule run is active on this machine (pid $other: $(ps -o args= -p "$other" | cut -c1-120)); the scenarios share the network lnmol-net, so run them one at a time"
done

ensure_docker
for name in $(docker ps -a --format '{{.Names}}' | grep -E "^${MOLECULE_PREFIX}" || true); do
    if [[ $name != "${MOLECULE_PREFIX}${scenario}-"* ]]; then
        log "removing leftover container $name"
        docker rm -f "$name" >/dev/null
    fi
done
if docker network inspect "${MOLECULE_PREFIX}net" >/dev/null 2>&1 &&
    [[ -z $(docker network inspect "${MOLECULE_PREFIX}net" --format '{{range .Containers}}{{.Name}} {{end}}') ]]; then
    log "removing leftover network ${MOLECULE_PREFIX}net"
    docker network rm "${MOLECULE_PREFIX}net" >/dev/null
fi
"$REPO_ROOT/scripts/build-image.sh" >/dev/null
"$REPO_ROOT/scripts/build-wheelhouse.sh"
