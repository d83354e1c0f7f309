#!/usr/bin/env bash
# Build the systemd base image for the test hosts without any container registry:
# debootstrap a minimal Debian bookworm, then `docker import` it. The image is tagged by a hash of
# this recipe (see image_recipe in lib.sh) and reused while it exists; `:current` points at it.
# Run containers of it with --stop-signal SIGRTMIN+3 (docker 20.10 import cannot set STOPSIGNAL).
#   scripts/build-image.sh          build if missing, print the image reference
#   scripts/build-image.sh --force  rebuild even if it exists
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force=0
[[ ${1:-} == --force ]] && force=1

need_root "building the base image"
ensure_docker
ref="$(image_ref)"

if [[ $force -eq 0 ]] && docker image inspect "$ref" >/dev/null 2>&1; then
    log "base image $ref exists: reusing it"
else
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    rootfs="$(mktemp -d /var/tmp/leader-node-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs"' EXIT
    mirror="$(debian_mirror)"
    log "debootstrap bookworm from $mirror (about a minute)"
    started=$(now_s)
    debootstrap --variant=minbase --include="$IMAGE_PACKAGES" bookworm "$rootfs" "$mirror" \
        >"$rootfs.log" 2>&1 || { tail -n 40 "$rootfs.log" >&2; die "debootstrap failed (log: $rootfs.log)"; }
    rm -f "$rootfs.log"

    # Make the tree a good container host: systemd as PID 1, a fresh machine-id per container,
    # no consoles or hardware units that cannot work here, small.
    : >"$rootfs/etc/machine-id"
    rm -f "$rootfs/var/lib/dbus/machine-id"
    for unit in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
        systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
        systemd-remount-fs.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
        e2scrub_reap.service fstrim.timer; do
        ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
    done
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/var/log/*.log

    log "docker import -> $ref"
    tar -C "$rootfs" -c . | docker import \
        -c 'CMD ["/lib/systemd/systemd"]' \
        -c 'ENV container=docker' \
        -c "LABEL org.leader-node.recipe=${ref#*:}" \
        - "$ref" >/dev/null
    log "base image built in $(($(now_s) - started)) s"
    # Older recipes are dead weight; ignore the ones still used by a container.
    for old in $(docker image ls "$IMAGE_REPO" --format '{{.Repository}}:{{.Tag}}'); do
        [[ $old == "$ref" || $old == "$IMAGE_REPO:current" ]] && continue
        docker rmi "$old" >/dev/null 2>&1 || true
    done
fi
docker tag "$ref" "$IMAGE_REPO:current"
printf '%s\n' "$ref"
