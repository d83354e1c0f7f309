#!/usr/bin/env bash
# Molecule's dependency step of the scenario vm, and what must exist before `scripts/vm.sh molecule`:
# Vagrant, vagrant-libvirt, libvirtd and QEMU installed, the box built once per recipe, the venv, and the
# project's libvirtd running in its network namespace leader-node-vm, and the wheelhouse of this checkout.
# Leftover VMs of an aborted run are removed by Molecule's destroy step, which runs next.
# Run it outside the namespace first (scripts/test-deploy.sh does): the namespace has no way out, so
# there it can only check what needs a package registry (apt, the box's mmdebstrap, the wheelhouse).
source "$(dirname "${BASH_SOURCE[0]}")/vmlib.sh"
cd "$REPO_ROOT"
need_root "Molecule on VMs"
ensure_vm_packages
ensure_venv
scripts/build-vm-box.sh >/dev/null
if [[ $(ip netns identify $$) == "$VM_NETNS" ]]; then
    [[ -s $CACHE_DIR/wheelhouse.tar ]] || die "no wheelhouse: run scripts/molecule-vm-host.sh outside the namespace first"
else
    scripts/build-wheelhouse.sh
fi
ensure_libvirtd
