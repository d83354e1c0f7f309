#!/usr/bin/env bash
# Molecule's dependency step of the scenario vm, and what must exist before `scripts/vm.sh molecule`:
# Vagrant, vagrant-libvirt, libvirtd and QEMU installed, the box built once per recipe, the venv, and the
# project's libvirtd running in its network namespace leader-node-vm. Leftover VMs of an aborted run are
# removed by Molecule's destroy step, which runs next.
source "$(dirname "${BASH_SOURCE[0]}")/vmlib.sh"
cd "$REPO_ROOT"
need_root "Molecule on VMs"
ensure_vm_packages
ensure_venv
scripts/build-vm-box.sh >/dev/null
ensure_libvirtd
