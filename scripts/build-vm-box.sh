#!/usr/bin/env bash
# Build the Vagrant box of the VM hosts from Debian's packages (no box download: these machines reach
# only package registries), for the libvirt provider:
#   mmdebstrap a minimal bookworm with systemd, a kernel, openssh-server, python3, iptables and sudo;
#   the Vagrant conventions (user vagrant, password-less sudo, Vagrant's insecure key, replaced by a key
#   of each machine's own at the first `vagrant up`); systemd-networkd with DHCP on eth0 (the management
#   network) so that Vagrant's Debian guest configures the private network through networkd;
#   then `mkfs.ext4 -d` of the tree (no loop mounts), `qemu-img convert` to qcow2, and the box
#   (box.img + metadata.json + Vagrantfile). There is no bootloader: the Vagrantfile boots the kernel and
#   initrd copied out next to the box (direct kernel boot).
# Cached by a hash of this recipe under $CACHE_DIR/vm/<hash>/ and added to Vagrant as
# leader-node-bookworm-<hash> (a new name per recipe, so that vagrant-libvirt never reuses an old image
# it uploaded to its storage pool). Prints the box directory.
#   scripts/build-vm-box.sh          build and add if missing
#   scripts/build-vm-box.sh --force  rebuild
source "$(dirname "${BASH_SOURCE[0]}")/vmlib.sh"

force=0
[[ ${1:-} == --force ]] && force=1
need_root "building the VM box"

box_dir="$(vm_box_dir)"
box_name="$(vm_box_name)"
if [[ $force -eq 0 && -f $box_dir/added ]] && vagrant box list 2>/dev/null | grep -q "^$box_name "; then
    log "VM box $box_name exists: reusing it"
    printf '%s\n' "$box_dir"
    exit 0
fi

for tool in mmdebstrap:mmdebstrap qemu-img:qemu-utils mkfs.ext4:e2fsprogs vagrant:vagrant; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "${tool%%:*}" >/dev/null 2>&1 || apt_install "${tool#*:}"
done

started=$(now_s)
rm -rf "$box_dir"
mkdir -p "$box_dir"
work="$(mktemp -d /var/tmp/leader-node-vmbox.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mirror="$(debian_mirror)"
log "mmdebstrap bookworm with a kernel from $mirror (about a minute)"
mmdebstrap --variant=minbase --include="$VM_PACKAGES" bookworm "$rootfs" "$mirror" \
    >"$work/mmdebstrap.log" 2>&1 || { tail -n 40 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }

# The Vagrant conventions of a base box.
chroot "$rootfs" useradd --create-home --shell /bin/bash vagrant
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\n' >"$rootfs/etc/sudoers.d/vagrant"
chmod 0440 "$rootfs/etc/sudoers.d/vagrant"
install -d -m 0700 -o 1000 -g 1000 "$rootfs/home/vagrant/.ssh"
install -m 0600 -o 1000 -g 1000 "$(vagrant_insecure_pubkey)" "$rootfs/home/vagrant/.ssh/authorized_keys"

# Networking: eth0 (names from the kernel: net.ifnames=0 on the command line) takes DHCP from the
# management network; Vagrant writes 50-vagrant-eth1.network for the private network.
cat >"$rootfs/etc/systemd/network/10-eth0.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
EOF
ln -sf /lib/systemd/system/systemd-networkd.service "$rootfs/etc/systemd/system/multi-user.target.wants/"
printf 'leader-node-vm\n' >"$rootfs/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 leader-node-vm\n' >"$rootfs/etc/hosts"
printf '/dev/vda / ext4 defaults,noatime 0 1\n' >"$rootfs/etc/fstab"
# One SSH host key per machine, made at its first boot, not one baked into every copy of the box.
rm -f "$rootfs"/etc/ssh/ssh_host_*
mkdir -p "$rootfs/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    >"$rootfs/etc/systemd/system/ssh.service.d/host-keys.conf"
# A fresh machine id per VM; nothing periodic that would compete with the tests for an emulated CPU.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    man-db.timer systemd-timesyncd.service; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done

cp "$(readlink -f "$rootfs/vmlinuz")" "$box_dir/vmlinuz"
cp "$(readlink -f "$rootfs/initrd.img")" "$box_dir/initrd.img"
chmod 0644 "$box_dir/vmlinuz" "$box_dir/initrd.img"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/boot/*

log "disk image (mkfs.ext4 -d, qemu-img convert)"
truncate -s "${VM_DISK_GB}G" "$work/disk.raw"
mkfs.ext4 -q -F -L root -d "$rootfs" "$work/disk.raw"
qemu-img convert -O qcow2 "$work/disk.raw" "$work/box.img"
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$VM_DISK_GB" >"$work/metadata.json"
printf 'Vagrant.configure("2") do |config|\nend\n' >"$work/Vagrantfile"
tar -C "$work" -cf "$box_dir/box.box" box.img metadata.json Vagrantfile
rm -f "$work/disk.raw" "$work/box.img"

log "vagrant box add $box_name"
vagrant box add --force --name "$box_name" "$box_dir/box.box" >/dev/null
rm -f "$box_dir/box.box"
# Older recipes are dead weight.
for old in $(vagrant box list 2>/dev/null | awk '{print $1}' | grep '^leader-node-bookworm-' || true); do
    [[ $old == "$box_name" ]] || vagrant box remove --force --all "$old" >/dev/null 2>&1 || true
done
touch "$box_dir/added"
log "VM box built in $(($(now_s) - started)) s"
printf '%s\n' "$box_dir"
