#!/usr/bin/env bash
# make test-deploy: the Ansible code and the deployed service, for real.
#  1. ansible-lint, production profile (.ansible-lint)
#  2. syntax check of the playbooks against the container inventory (`-i inventory`, as documented)
#     and the VM inventory (`-i inventory-vagrant`)
#  3. Molecule scenarios on real systemd containers, each a full `molecule test` (leftovers removed,
#     create, converge with deploy/site.yml, verify with pytest-testinfra, destroy) for each algorithm:
#     default (the deploy: check, converge, idempotence, then on the same cluster rolling restart,
#     secret rotation, site.yml reruns and the protocol upgrade and back), faults (the fault tests of
#     kill-leader, partition, rejoin and concurrent one after the other on ONE converged cluster, each
#     judged by node/history with its own artifacts under artifacts/molecule/faults-<algorithm>/),
#     leader-service (the leader-only unit and the fencing check; its own hosts and role variables).
#     The four fault scenarios and fencing still run alone (MOLECULE_SCENARIOS=partition, ...): faults
#     runs the same test files, and leader-service the same fencing check, on a cluster converged anyway.
#   Cost per algorithm on a shared 2-core machine (docs/deploy.md, "What it costs"): default 15-18 min
#   (ring skips the protocol upgrade), faults 4.5-6 min (the four fault scenarios alone took 25-28 min,
#   on a busier machine), leader-service 3.5-7.5 min; 58 min in all, summed over runs at load 2 to 79;
#   vm 16-21 min. Most of it is Ansible on the hosts: converges and playbook runs.
#  4. the Molecule scenario vm (alone: make test-vm) on three Debian VMs booted by the Vagrantfile
#     (provider libvirt, KVM or QEMU's emulation), for one algorithm (LEADER_NODE_VM_ALGORITHMS, default
#     bully): converge, idempotence, the default scenario's checks, SIGKILL of the leader and a 1|2
#     partition; then make cluster-vm-down.
#   MOLECULE_SCENARIOS="default partition" LEADER_NODE_ALGORITHMS="ring" scripts/test-deploy.sh
#   MOLECULE_SCENARIOS=vm LEADER_NODE_VM_ALGORITHMS="bully ring" scripts/test-deploy.sh
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
ansible-playbook --syntax-check -i inventory deploy/site.yml deploy/rolling-restart.yml deploy/rotate-secret.yml
ansible-playbook --syntax-check -i inventory-vagrant deploy/site.yml deploy/rolling-restart.yml deploy/rotate-secret.yml

# Every scenario for each algorithm, `default` (the deploy itself) first. One scenario at a time: they
# share the network lnmol-net and its addresses. A failed scenario does not hide the others: all run,
# then the summary names each result and the exit status is non-zero if any failed.
#   MOLECULE_SCENARIOS="partition" LEADER_NODE_ALGORITHMS="ring" scripts/test-deploy.sh
# The VM scenario comes last, for one algorithm: 16 min on a quiet 2-core machine (docs/deploy.md,
# "Molecule on VMs"); alone: make test-vm (MOLECULE_SCENARIOS=vm scripts/test-deploy.sh).
read -r -a scenarios <<<"${MOLECULE_SCENARIOS:-default faults leader-service vm}"
read -r -a algorithms <<<"${LEADER_NODE_ALGORITHMS:-${LEADER_NODE_ALGORITHM:-bully ring}}"
read -r -a vm_algorithms <<<"${LEADER_NODE_VM_ALGORITHMS:-bully}"
summary=()
failed=0
all_started=$(now_s)
for scenario in "${scenarios[@]}"; do
    runner=(molecule test -s "$scenario")
    if [[ $scenario == vm ]]; then
        # Inside the VMs' network namespace; the VMs, libvirtd and the namespace are removed afterwards.
        scripts/molecule-vm-host.sh
        runner=(scripts/vm.sh molecule test -s vm)
        trap 'scripts/cluster-vm-down.sh >/dev/null 2>&1 || true' EXIT
        scenario_algorithms=("${vm_algorithms[@]}")
    else
        ensure_docker
        scenario_algorithms=("${algorithms[@]}")
    fi
    for algorithm in "${scenario_algorithms[@]}"; do
        started=$(now_s)
        log "molecule test -s $scenario (algorithm $algorithm)"
        if LEADER_NODE_ALGORITHM="$algorithm" "${runner[@]}"; then
            result=passed
        else
            result=FAILED
            failed=1
        fi
        summary+=("$(printf '%-14s %-6s %-6s %4d s' "$scenario" "$algorithm" "$result" $(($(now_s) - started)))")
        log "molecule test -s $scenario ($algorithm) $result in $(($(now_s) - started)) s"
    done
done
if [[ " ${scenarios[*]} " == *" vm "* ]]; then
    scripts/cluster-vm-down.sh
    trap - EXIT
fi
log "Molecule scenarios ($(($(now_s) - all_started)) s; artifacts of the fault scenarios: artifacts/molecule/)"
printf '  %s\n' "${summary[@]}" >&2
exit "$failed"
