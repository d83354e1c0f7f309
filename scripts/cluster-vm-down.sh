#!/usr/bin/env bash
# make cluster-vm-down: remove the VMs of make cluster-vm (and of Molecule's scenario vm), their libvirt
# networks, disks and storage pool, the project's libvirtd and its network namespace, by the prefix
# leader-node-vm: also after an aborted run, when Vagrant's own records are stale or gone.
#   scripts/cluster-vm-down.sh                  everything
#   scripts/cluster-vm-down.sh --machines-only  the VMs, their networks and disks (Molecule's destroy step,
#                                               which runs inside the namespace and keeps libvirtd)
source "$(dirname "${BASH_SOURCE[0]}")/vmlib.sh"
cd "$REPO_ROOT"
need_root "make cluster-vm-down"
if [[ ${1:-} == --machines-only ]]; then
    vm_remove_machines
    log "VMs removed"
else
    vm_cleanup
    log "VMs, libvirtd and the network namespace $VM_NETNS removed"
fi
