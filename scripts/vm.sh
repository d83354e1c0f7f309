#!/usr/bin/env bash
# Run a command next to the VMs of `make cluster-vm`: in the project's network namespace (where the VMs'
# networks are), in the repository, with the environment the Vagrantfile reads for the local box, e.g.
#   scripts/vm.sh vagrant status
#   scripts/vm.sh vagrant ssh leader-node-vm-1 -c 'leaderctl status'
#   scripts/vm.sh ansible-playbook deploy/site.yml -i inventory-vagrant
source "$(dirname "${BASH_SOURCE[0]}")/vmlib.sh"
cd "$REPO_ROOT"
need_root "reaching the VMs"
(($# > 0)) || die "usage: scripts/vm.sh <command> [args...]"
ip netns list | grep -qw "^$VM_NETNS" || die "no VMs: the network namespace $VM_NETNS does not exist (make cluster-vm)"
vm_env
export PATH="$VENV/bin:$PATH"
exec ip netns exec "$VM_NETNS" "$@"
