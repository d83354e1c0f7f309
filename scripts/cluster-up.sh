#!/usr/bin/env bash
# make cluster: a five-node leader-node cluster on local systemd containers, deployed by the real
# playbook. Installs what is missing (Docker engine, base image, venv), reuses what exists.
#   containers leader-node-1..5 on network leader-node-net, addresses 172.30.77.11-15, ids 1-5
# On failure the containers and the network are removed again (KEEP_ON_FAILURE=1 keeps them).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need_root "make cluster"
started=$(now_s)
NODES=(1 2 3 4 5)
ip_of() { printf '172.30.77.%d' $((10 + $1)); }

ensure_venv
ensure_docker
image="$(scripts/build-image.sh | tail -n 1)"
scripts/build-wheelhouse.sh

cleanup_on_failure() {
    local rc=$?
    if [[ $rc -ne 0 && ${KEEP_ON_FAILURE:-0} != 1 ]]; then
        log "make cluster failed (exit $rc): removing its containers and network (KEEP_ON_FAILURE=1 keeps them)"
        "$REPO_ROOT/scripts/cluster-down.sh" || true
    fi
}
trap cleanup_on_failure EXIT

if ! docker network inspect "$CLUSTER_NETWORK" >/dev/null 2>&1; then
    log "creating network $CLUSTER_NETWORK ($CLUSTER_SUBNET)"
    docker network create --driver bridge --subnet "$CLUSTER_SUBNET" \
        --label org.leader-node.project=cluster "$CLUSTER_NETWORK" >/dev/null
fi

for id in "${NODES[@]}"; do
    name="leader-node-$id"
    current_image="$(docker inspect --format '{{.Config.Image}}' "$name" 2>/dev/null || true)"
    if [[ -n $current_image && $current_image != "$image" ]]; then
        log "$name runs $current_image, not $image: recreating it"
        docker rm -f "$name" >/dev/null
        current_image=""
    fi
    if [[ -z $current_image ]]; then
        log "creating $name ($(ip_of "$id"))"
        docker run -d --name "$name" --hostname "$name" \
            --network "$CLUSTER_NETWORK" --ip "$(ip_of "$id")" \
            --label org.leader-node.project=cluster \
            "${SYSTEMD_RUN_FLAGS[@]}" "$image" >/dev/null
    elif [[ $(docker inspect --format '{{.State.Running}}' "$name") != true ]]; then
        log "starting existing $name"
        docker start "$name" >/dev/null
    else
        log "reusing running $name"
    fi
done
for id in "${NODES[@]}"; do
    wait_systemd_running "leader-node-$id" 60
done

log "ansible-playbook deploy/site.yml -i inventory"
"$VENV/bin/ansible-playbook" deploy/site.yml -i inventory

urls=()
for id in "${NODES[@]}"; do urls+=("http://$(ip_of "$id"):7701"); done
await_leader_and_status inventory leader-node-1 "" "${urls[@]}"
trap - EXIT
log "cluster up in $(($(now_s) - started)) s. Look around:"
cat <<HINTS
  docker exec leader-node-3 systemctl status leader-node
  docker exec leader-node-$LEADER journalctl -u leader-node EVENT=became_leader
  curl -s http://172.30.77.13:7701/status ; curl -si http://$(ip_of "$LEADER"):7701/leader
  .venv/bin/leaderctl status ${urls[*]}
  make cluster-down
HINTS
