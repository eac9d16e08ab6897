#!/bin/bash
# voicegender first-boot install, shared by both provisioning paths:
#   firstrun.sh (Bookworm, systemd.run=) and cloud-init runcmd (Trixie) call `firstboot.sh enable`,
#   which installs voicegender-firstboot.service; that unit runs `firstboot.sh run` once the
#   network is up (apt may need it for Debian packages the image lacks), installs the bundle from
#   the boot partition, starts voicegender and removes itself. If apt cannot reach the network,
#   the app is still installed from the bundle's wheels and the unit tries apt again next boot.
#
#   firstboot.sh enable [--now]   install + enable the one-shot unit (--now: also start it)
#   firstboot.sh run              what the unit runs
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bundle=$(cd "$here/../.." && pwd)
unit=/etc/systemd/system/voicegender-firstboot.service
log() { echo "voicegender-firstboot: $*"; }

enable_unit() {
    install -m 0644 "$here/voicegender-firstboot.service" "$unit"
    sed -i "s|@BUNDLE@|$bundle|g" "$unit"
    install -d /etc/systemd/system/multi-user.target.wants
    ln -sf ../voicegender-firstboot.service \
        /etc/systemd/system/multi-user.target.wants/voicegender-firstboot.service
    if [[ "${1:-}" == --now && -d /run/systemd/system ]]; then
        systemctl daemon-reload
        systemctl start --no-block voicegender-firstboot.service
    fi
    log "enabled $unit (bundle $bundle)"
}

disable_unit() {
    rm -f /etc/systemd/system/multi-user.target.wants/voicegender-firstboot.service "$unit"
    [[ -d /run/systemd/system ]] && systemctl daemon-reload
}

run() {
    [[ -f "$bundle/install.sh" ]] || { log "no bundle at $bundle; nothing to do"; disable_unit; return 0; }
    if bash "$bundle/install.sh" --bundle "$bundle" --no-start; then
        disable_unit
        systemctl start --no-block voicegender.service || true
        log "installed and started voicegender"
        return 0
    fi
    log "full install failed (network for apt?); installing the app from the bundle alone"
    if bash "$bundle/install.sh" --bundle "$bundle" --no-start --no-apt; then
        systemctl start --no-block voicegender.service || true
        log "installed without the missing Debian packages; will retry apt at the next boot"
    fi
    return 1
}

case "${1:-}" in
    enable) shift; enable_unit "$@" ;;
    run) run ;;
    *) echo "usage: $0 enable [--now] | run" >&2; exit 2 ;;
esac
