#!/usr/bin/env bash
# Build the wheelhouse the Ansible role installs from, offline, on the hosts:
# the wheel of this checkout (working tree as it is) plus the pinned runtime dependencies
# of requirements-deploy.txt, built for the controller's Python (3.11 = Debian bookworm's).
#   scripts/build-wheelhouse.sh [OUTPUT_DIR]     default: .cache/wheelhouse
# It also writes OUTPUT_DIR.tar, the same files as one archive for the hosts.
# The output also holds requirements.txt (exact pins of every wheel), tools/pip.whl (the installer,
# run from its wheel on the hosts), SHA256SUMS and PYTHON (major.minor the wheels are for; the role
# checks the hosts' Python against it).
# Builds are reproducible (SOURCE_DATE_EPOCH), so an unchanged tree gives identical files and a
# rerun of the playbook changes nothing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="${1:-$CACHE_DIR/wheelhouse}"
python="$VENV/bin/python"
[[ -x $python ]] || python="$(command -v python3)"

src="$(mktemp -d /tmp/leader-node-src.XXXXXX)"
stage="$(mktemp -d /tmp/leader-node-wheels.XXXXXX)"
trap 'rm -rf "$src" "$stage"' EXIT

# Build from a copy of the tree so stale build/ or *.egg-info output can never leak into the wheel.
tar -C "$REPO_ROOT" -c \
    --exclude=./.git --exclude=./.venv --exclude=./.cache --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=./.mypy_cache --exclude=./.ruff_cache \
    --exclude=./.pytest_cache --exclude=./.hypothesis --exclude=./artifacts --exclude=./molecule \
    --exclude=./deploy --exclude=./inventory --exclude=./inventory-vagrant . | tar -C "$src" -x

log "building wheelhouse -> $out"
export SOURCE_DATE_EPOCH=315532800 PIP_DISABLE_PIP_VERSION_CHECK=1
"$python" -m pip wheel -q --wheel-dir "$stage" -r "$REPO_ROOT/requirements-deploy.txt" "$src" \
    >"$src.log" 2>&1 || { cat "$src.log" >&2; rm -f "$src.log"; die "pip wheel failed"; }
rm -f "$src.log"
# pip itself, run on the hosts straight from its wheel (`python tools/pip.whl/pip install ...`), so their
# venv needs no ensurepip (Debian: no python3-venv) and is created in a fraction of a second.
pip_version="$("$python" -m pip --version | awk '{print $2}')"
"$python" -m pip download -q --no-deps --only-binary=:all: --dest "$stage/tools" "pip==$pip_version" \
    >"$src.log" 2>&1 || { cat "$src.log" >&2; rm -f "$src.log"; die "pip download pip==$pip_version failed"; }
rm -f "$src.log"
mv "$stage"/tools/pip-*.whl "$stage/tools/pip.whl"

# The install list: every wheel pinned exactly, so the hosts resolve nothing on their own.
(
    cd "$stage"
    for whl in *.whl; do
        name="${whl%%-*}"
        rest="${whl#*-}"
        printf '%s==%s\n' "${name//_/-}" "${rest%%-*}"
    done | sort >requirements.txt
    "$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' >PYTHON
    sha256sum -- *.whl tools/pip.whl requirements.txt PYTHON | sort -k2 >SHA256SUMS
)

# Replace the old wheelhouse only when the content differs. The role ships $out.tar, one file, to the
# hosts (one checksum per host instead of one per wheel); it is reproducible like the wheels.
if [[ -f $out/SHA256SUMS && -f $out.tar ]] && cmp -s "$out/SHA256SUMS" "$stage/SHA256SUMS"; then
    log "wheelhouse unchanged"
else
    rm -rf "$out"
    mkdir -p "$(dirname "$out")"
    cp -a "$stage" "$out"
    chmod 0755 "$out"
    tar -C "$out" --sort=name --mtime=@"$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
        -cf "$out.tar.tmp" . && mv "$out.tar.tmp" "$out.tar"
fi
sed 's/^/  /' "$out/requirements.txt" >&2
