#!/usr/bin/env bash
# make cluster-down: remove the containers leader-node-N and the network leader-node-net.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
    log "no Docker engine here: nothing to remove"
    exit 0
fi
ensure_docker
remove_containers_matching "$CLUSTER_NAME_RE"
remove_networks_matching "$CLUSTER_NETWORK"
log "cluster removed"
