#!/usr/bin/env bash
# Boot VMs 1..COUNT of the Vagrantfile (Molecule's scenario vm, create step; make cluster-vm): the
# packages, the box, the project's libvirtd, then `vagrant up` (KVM or emulation).
#   scripts/vm-create.sh COUNT
source "$(dirname "${BASH_SOURCE[0]}")/vmlib.sh"
cd "$REPO_ROOT"
need_root "booting VMs"
count="${1:?usage: vm-create.sh COUNT}"
[[ $count =~ ^[1-9]$ ]] || die "COUNT must be a whole number from 1 to 9 (got '$count')"
ensure_vm_packages
scripts/build-vm-box.sh >/dev/null
ensure_libvirtd
vm_up "$count"
