#!/usr/bin/env bash
# make cluster-vm: a leader-node cluster on Debian VMs booted by the repository's Vagrantfile (provider
# libvirt, the box built from Debian's packages) and deployed by the unchanged playbook over SSH through
# the VM inventory. VMS=3 unless set (VMS=5: five). Installs what is missing (Vagrant, vagrant-libvirt,
# libvirtd, QEMU, the box, the venv), reuses what exists (running VMs are kept; more VMs are added).
#   machines leader-node-vm-1..VMS, addresses 192.168.56.11.., ids 1..VMS, all inside the network
#   namespace leader-node-vm (scripts/vm.sh runs a command there)
# On failure everything is removed again (KEEP_ON_FAILURE=1 keeps it); make cluster-vm-down removes it.
source "$(dirname "${BASH_SOURCE[0]}")/vmlib.sh"
cd "$REPO_ROOT"

need_root "make cluster-vm"
started=$(now_s)
VMS="${VMS:-3}"
[[ $VMS =~ ^[1-9]$ ]] || die "VMS must be a whole number from 1 to 9 (got '$VMS')"
export VMS

cleanup_on_failure() {
    local rc=$?
    if [[ $rc -ne 0 && ${KEEP_ON_FAILURE:-0} != 1 ]]; then
        log "make cluster-vm failed (exit $rc): removing its VMs (KEEP_ON_FAILURE=1 keeps them)"
        "$REPO_ROOT/scripts/cluster-vm-down.sh" || true
    fi
}
trap cleanup_on_failure EXIT

ensure_venv
scripts/build-wheelhouse.sh
scripts/vm-create.sh "$VMS"
vm_env

log "ansible-playbook deploy/site.yml -i inventory-vagrant"
scripts/vm.sh "$VENV/bin/ansible-playbook" deploy/site.yml -i inventory-vagrant

urls=()
for ((id = 1; id <= VMS; id++)); do urls+=("http://192.168.56.$((10 + id)):7701"); done
await_leader_and_status inventory-vagrant leader-node-vm-1 scripts/vm.sh "${urls[@]}"
trap - EXIT
log "cluster of $VMS VMs up in $(($(now_s) - started)) s ($LEADER_NODE_VM_ACCEL). Look around:"
cat <<HINTS
  scripts/vm.sh vagrant status
  scripts/vm.sh vagrant ssh leader-node-vm-2 -c 'systemctl status leader-node'
  scripts/vm.sh vagrant ssh leader-node-vm-$LEADER -c 'sudo journalctl -u leader-node EVENT=became_leader'
  scripts/vm.sh curl -s http://192.168.56.12:7701/status
  scripts/vm.sh .venv/bin/leaderctl status ${urls[*]}
  make cluster-vm-down
HINTS
