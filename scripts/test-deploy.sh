#!/usr/bin/env bash
# make test-deploy: the Ansible code and the deployed service, for real.
#  1. ansible-lint, production profile (.ansible-lint)
#  2. syntax check of the playbooks against the container inventory
#  3. Molecule scenarios on real systemd containers (default: the deploy scenario), each a full
#     `molecule test`: leftovers removed, create, converge with deploy/site.yml, idempotence, verify
#     (pytest-testinfra), destroy. The algorithm comes from LEADER_NODE_ALGORITHM (bully when unset).
#   MOLECULE_SCENARIOS="default" scripts/test-deploy.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need_root "make test-deploy"
ensure_venv
export PATH="$VENV/bin:$PATH"
if [[ ${CI:-} == true ]]; then
    export ANSIBLE_NOCOLOR=1 PY_COLORS=0 NO_COLOR=1 ANSIBLE_FORCE_COLOR=0
fi

log "ansible-lint (production profile)"
ansible-lint

log "syntax check"
ansible-playbook --syntax-check -i inventory/containers.yml deploy/site.yml deploy/rolling-restart.yml

ensure_docker
read -r -a scenarios <<<"${MOLECULE_SCENARIOS:-default}"
for scenario in "${scenarios[@]}"; do
    started=$(now_s)
    log "molecule test -s $scenario (algorithm ${LEADER_NODE_ALGORITHM:-bully})"
    molecule test -s "$scenario"
    log "molecule test -s $scenario passed in $(($(now_s) - started)) s"
done
