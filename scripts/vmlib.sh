# Shared helpers of the VM scripts (make cluster-vm, the Molecule scenario vm). Source it; do not run it.
#
# The VMs are Vagrant machines of the repository's Vagrantfile, provider libvirt. Everything they need
# lives in one network namespace of this project, leader-node-vm: libvirtd (and so the VMs' bridges,
# dnsmasq and NAT rules), and every command that talks to a VM (vagrant, ansible, molecule). No traffic
# leaves the machine and the host's own interfaces and iptables rules are not touched; removing the
# namespace removes the rest.
#   scripts/vm.sh <command>   runs a command in that namespace, e.g. scripts/vm.sh vagrant ssh leader-node-vm-1

# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VM_PREFIX="leader-node-vm"        # netns, machines, domains, libvirt networks, storage pool, volumes
VM_NETNS="$VM_PREFIX"
VM_RUN_DIR="/run/$VM_PREFIX"      # pid files of this project's libvirtd and virtlogd
VM_POOL_DIR="/var/lib/$VM_PREFIX/images"
VM_DISK_GB=4
VM_ACCEL_FILE="$REPO_ROOT/.vagrant/leader-node-vm-accel"
# What a VM host needs beyond minbase: the container image's packages, a kernel, and SSH with sudo.
VM_PACKAGES="systemd,systemd-sysv,udev,dbus,libpam-systemd,linux-image-amd64,initramfs-tools,openssh-server,sudo,python3,python3-venv,iptables,iproute2,procps"
VM_PACKAGES_APT=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-utils mmdebstrap e2fsprogs dnsmasq-base)

vm_box_recipe() {
    printf 'suite=bookworm variant=minbase packages=%s disk=%s\n' "$VM_PACKAGES" "$VM_DISK_GB"
    cat "$REPO_ROOT/scripts/build-vm-box.sh"
}
vm_box_hash() { vm_box_recipe | sha256sum | cut -c1-12; }
vm_box_dir() { printf '%s/vm/%s' "$CACHE_DIR" "$(vm_box_hash)"; }
vm_box_name() { printf 'leader-node-bookworm-%s' "$(vm_box_hash)"; }

vagrant_insecure_pubkey() {
    local key
    key="$(dpkg -L vagrant 2>/dev/null | grep '/keys/vagrant\.pub$' | head -n 1)"
    [[ -n $key && -f $key ]] || die "Vagrant's insecure public key (keys/vagrant.pub of the vagrant package) not found"
    printf '%s' "$key"
}

# ensure_vm_packages: Vagrant with the libvirt provider, libvirtd, QEMU and the box's build tools.
ensure_vm_packages() {
    local missing=() pkg
    for pkg in "${VM_PACKAGES_APT[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

in_vm_netns() { ip netns exec "$VM_NETNS" "$@"; }

# netns_of PID: the inode of a process's network namespace.
netns_of() { stat -L -c %i "/proc/$1/ns/net" 2>/dev/null; }

# live_pids NAME: pids of the running (not zombie) processes named NAME.
live_pids() { ps -C "$1" -o pid=,stat= | awk '$2 !~ /Z/ {print $1}'; }

# ensure_libvirtd: the project's network namespace, and virtlogd and libvirtd started inside it.
# A libvirtd that runs in another namespace (the host's own, say) is not ours to use or stop.
ensure_libvirtd() {
    need_root "starting libvirtd"
    if ! ip netns list | grep -qw "^$VM_NETNS"; then
        ip netns add "$VM_NETNS"
        in_vm_netns ip link set lo up
    fi
    mkdir -p "$VM_RUN_DIR"
    local ours pid
    ours="$(stat -L -c %i "/run/netns/$VM_NETNS")"
    for pid in $(live_pids libvirtd); do
        [[ $(netns_of "$pid") == "$ours" ]] ||
            die "a libvirtd outside the namespace $VM_NETNS runs (pid $pid): stop it first (this project starts its own)"
    done
    if [[ -z $(live_pids virtlogd) ]]; then
        setsid virtlogd --daemon --pid-file "$VM_RUN_DIR/virtlogd.pid" </dev/null
    fi
    if [[ -z $(live_pids libvirtd) ]]; then
        log "starting libvirtd in the network namespace $VM_NETNS"
        local start=(ip netns exec "$VM_NETNS" libvirtd --daemon --pid-file "$VM_RUN_DIR/libvirtd.pid")
        if [[ $(vm_accel) == tcg && -e /dev/kvm ]]; then
            # Under emulation libvirtd does not see /dev/kvm: in its own mount namespace a plain file is
            # mounted over it (the host's device is untouched). Where /dev/kvm exists but QEMU's user
            # cannot use it (0600, or the nested kvm_pvm), libvirt's cached QEMU capabilities say "KVM"
            # while its check says "no KVM": it re-probes QEMU (2 processes, about 4 s) on every call, and
            # vagrant up sat 4-6 minutes with its domains defined and shut off. libvirt tries to carry that
            # mount into each VM's private /dev and fails, so its qemu.conf (a copy, mounted over the
            # host's in the same namespace) turns the per-VM mount namespace off: namespaces = [].
            : >"$VM_RUN_DIR/no-kvm"
            chmod 0600 "$VM_RUN_DIR/no-kvm"
            { grep -v '^[[:space:]]*namespaces[[:space:]]*=' /etc/libvirt/qemu.conf || true
              printf '\n# %s: no per-VM mount namespace (scripts/vmlib.sh, ensure_libvirtd)\nnamespaces = []\n' \
                  "$VM_PREFIX"; } >"$VM_RUN_DIR/qemu.conf"
            start=(unshare --mount --propagation slave -- sh -c \
                'mount --bind "$0" /dev/kvm && mount --bind "$1" /etc/libvirt/qemu.conf && shift && exec "$@"' \
                "$VM_RUN_DIR/no-kvm" "$VM_RUN_DIR/qemu.conf" "${start[@]}")
        fi
        setsid "${start[@]}" </dev/null
    fi
    local deadline=$(($(now_s) + 30))
    until virsh -q -c qemu:///system version >/dev/null 2>&1; do
        (($(now_s) <= deadline)) || die "libvirtd did not answer within 30 s"
        sleep 0.2
    done
    if ! virsh -q -c qemu:///system pool-info "$VM_PREFIX" >/dev/null 2>&1; then
        mkdir -p "$VM_POOL_DIR"
        virsh -q -c qemu:///system pool-define-as "$VM_PREFIX" dir --target "$VM_POOL_DIR" >/dev/null
    fi
    virsh -q -c qemu:///system pool-start "$VM_PREFIX" >/dev/null 2>&1 || true
}

# vm_accel: kvm or tcg. KVM only where it can boot a stock Debian kernel: the paravirtual nested KVM
# of these machines (kvm_pvm) runs only specially built guest kernels, so it means TCG at once;
# elsewhere KVM is tried and scripts/vm-up.sh falls back to TCG when a VM has not reached SSH in 60 s.
# LEADER_NODE_VM_ACCEL=kvm|tcg overrides; the choice of the running VMs is kept in $VM_ACCEL_FILE.
vm_accel() {
    if [[ -n ${LEADER_NODE_VM_ACCEL:-} ]]; then
        printf '%s' "$LEADER_NODE_VM_ACCEL"
    elif [[ -s $VM_ACCEL_FILE ]]; then
        cat "$VM_ACCEL_FILE"
    elif [[ ! -w /dev/kvm || -d /sys/module/kvm_pvm ]]; then
        printf 'tcg'
    else
        printf 'kvm'
    fi
}

# vm_remove_machines: remove every VM, libvirt network and disk of this project by its prefix, without
# Vagrant's bookkeeping (it also works after an aborted run; .vagrant/machines is stale then and goes too).
vm_remove_machines() {
    local virsh=(virsh -q -c qemu:///system) name
    if [[ -n $(live_pids libvirtd) ]] && "${virsh[@]}" version >/dev/null 2>&1; then
        for name in $("${virsh[@]}" list --all --name | grep "^$VM_PREFIX" || true); do
            "${virsh[@]}" destroy "$name" >/dev/null 2>&1 || true
            "${virsh[@]}" undefine "$name" >/dev/null 2>&1 || true
        done
        for name in $("${virsh[@]}" net-list --all --name | grep "^$VM_PREFIX" || true); do
            "${virsh[@]}" net-destroy "$name" >/dev/null 2>&1 || true
            "${virsh[@]}" net-undefine "$name" >/dev/null 2>&1 || true
        done
        if "${virsh[@]}" pool-info "$VM_PREFIX" >/dev/null 2>&1; then
            # The VMs' disks; the box's image (…_vagrant_box_image_…) stays for the next run.
            for name in $("${virsh[@]}" vol-list "$VM_PREFIX" | awk '{print $1}' | grep "^$VM_PREFIX-" || true); do
                "${virsh[@]}" vol-delete --pool "$VM_PREFIX" "$name" >/dev/null 2>&1 || true
            done
        fi
    fi
    # QEMU processes of this project that outlived their libvirtd (killed libvirtd, aborted run).
    pkill -f "qemu-system-x86_64 .*-name guest=$VM_PREFIX" 2>/dev/null || true
    rm -rf "$REPO_ROOT/.vagrant/machines" "$VM_ACCEL_FILE"
}

# vm_cleanup: vm_remove_machines, then the storage pool, the project's libvirtd and virtlogd, and its
# network namespace (with anything still running in it).
vm_cleanup() {
    vm_remove_machines
    local virsh=(virsh -q -c qemu:///system)
    if [[ -n $(live_pids libvirtd) ]] && "${virsh[@]}" pool-info "$VM_PREFIX" >/dev/null 2>&1; then
        "${virsh[@]}" pool-destroy "$VM_PREFIX" >/dev/null 2>&1 || true
        "${virsh[@]}" pool-undefine "$VM_PREFIX" >/dev/null 2>&1 || true
    fi
    local pidfile pid pids=() deadline
    for pidfile in "$VM_RUN_DIR/libvirtd.pid" "$VM_RUN_DIR/virtlogd.pid"; do
        pid="$(cat "$pidfile" 2>/dev/null || true)"
        [[ -n $pid ]] && kill "$pid" 2>/dev/null && pids+=("$pid")
    done
    # libvirtd may take its shutdown timeout (30 s) to leave; a new one must not meet it.
    deadline=$(($(now_s) + 35))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && (($(now_s) <= deadline)); do sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if ip netns list | grep -qw "^$VM_NETNS"; then
        ip netns pids "$VM_NETNS" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$VM_NETNS"
    fi
    rm -rf "$VM_RUN_DIR" "$VM_POOL_DIR"
}

# vm_env: the environment the Vagrantfile reads for the locally built box.
vm_env() {
    LEADER_NODE_VM_BOX="$(vm_box_name)"
    LEADER_NODE_VM_BOOT="$(vm_box_dir)"
    LEADER_NODE_VM_ACCEL="$(vm_accel)"
    export LEADER_NODE_VM_BOX LEADER_NODE_VM_BOOT LEADER_NODE_VM_ACCEL
}

# quiet_progress COMMAND...: run it without the thousands of "Progress: N%" updates vagrant-libvirt
# writes while it uploads a box to the storage pool (the exit status is the command's).
quiet_progress() {
    "$@" 2>&1 | stdbuf -oL tr '\r' '\n' | sed -u '/Progress: [0-9]*%/d'
}

# vm_up COUNT: `vagrant up` of machines 1..COUNT in the namespace, under KVM when vm_accel says so and
# it works, else under emulation: a VM that has not reached SSH within 60 s under KVM means fall back
# (a kernel that hangs under a nested hypervisor looks exactly like that). Exports the choice in
# LEADER_NODE_VM_ACCEL.
vm_up() {
    local count=$1 machines=() id
    for ((id = 1; id <= count; id++)); do machines+=("$VM_PREFIX-$id"); done
    vm_env
    local t0
    t0=$(now_s)
    mkdir -p "$REPO_ROOT/.vagrant"
    if [[ $LEADER_NODE_VM_ACCEL == kvm ]]; then
        log "vagrant up ${machines[*]} (KVM; emulation if SSH is not up within 60 s)"
        if VMS=$count LEADER_NODE_VM_BOOT_TIMEOUT=60 quiet_progress scripts/vm.sh vagrant up --provider libvirt "${machines[@]}"; then
            log "VMs up in $(($(now_s) - t0)) s (KVM)"
            printf 'kvm' >"$VM_ACCEL_FILE"
            return 0
        fi
        log "KVM did not boot the VMs within 60 s: destroying them, falling back to QEMU emulation (TCG)"
        VMS=$count scripts/vm.sh vagrant destroy -f "${machines[@]}" || true
        export LEADER_NODE_VM_ACCEL=tcg
    fi
    log "vagrant up ${machines[*]} ($LEADER_NODE_VM_ACCEL)"
    VMS=$count quiet_progress scripts/vm.sh vagrant up --provider libvirt "${machines[@]}"
    printf '%s' "$LEADER_NODE_VM_ACCEL" >"$VM_ACCEL_FILE"
    log "VMs up in $(($(now_s) - t0)) s ($LEADER_NODE_VM_ACCEL)"
}
