#!/bin/bash
# First boot of a Bookworm-era Raspberry Pi OS image, in the way Raspberry Pi Imager does it:
# scripts/flash copies this to the boot partition as /boot/firmware/firstrun.sh and appends
#   systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot
#   systemd.unit=kernel-command-line.target
# to cmdline.txt. It runs once as root before the network is up, applies
# /boot/firmware/voicegender-settings.txt (hostname, user, SSH, Wi-Fi, timezone, keymap) with
# Raspberry Pi OS's own helpers, enables voicegender's one-shot install for the next boot, removes
# itself from cmdline.txt and exits; systemd then reboots.
set +e

boot=/boot/firmware
settings="$boot/voicegender-settings.txt"
custom=/usr/lib/raspberrypi-sys-mods/imager_custom
userconf=/usr/lib/userconf-pi/userconf

# KEY=value, last one wins; the value is everything after the first "=", trimmed.
get() {
    [[ -f "$settings" ]] || return 0
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$settings" | tail -n 1 \
        | sed 's/[[:space:]]*$//' | tr -d '\r'
}

hostname=$(get HOSTNAME)
username=$(get USERNAME)
password_hash=$(get PASSWORD_HASH)
ssh_key=$(get SSH_PUBLIC_KEY)
wifi_ssid=$(get WIFI_SSID)
wifi_psk=$(get WIFI_PSK)
wifi_country=$(get WIFI_COUNTRY)
timezone=$(get TIMEZONE)
keymap=$(get KEYMAP)

if [[ -n "$hostname" ]]; then
    current=$(tr -d " \t\n\r" </etc/hostname)
    if [[ -x "$custom" ]]; then
        "$custom" set_hostname "$hostname"
    else
        echo "$hostname" >/etc/hostname
        sed -i "s/127.0.1.1.*$current/127.0.1.1\t$hostname/g" /etc/hosts
    fi
fi

firstuser=$(getent passwd 1000 | cut -d: -f1)
firstuserhome=$(getent passwd 1000 | cut -d: -f6)
if [[ -n "$ssh_key" ]]; then
    if [[ -x "$custom" ]]; then
        "$custom" enable_ssh -k "$ssh_key"
    else
        install -o "$firstuser" -m 700 -d "$firstuserhome/.ssh"
        echo "$ssh_key" >>"$firstuserhome/.ssh/authorized_keys"
        chown "$firstuser:$firstuser" "$firstuserhome/.ssh/authorized_keys"
        chmod 600 "$firstuserhome/.ssh/authorized_keys"
        echo 'PasswordAuthentication no' >>/etc/ssh/sshd_config
        systemctl enable ssh
    fi
elif [[ -n "$password_hash" ]]; then
    if [[ -x "$custom" ]]; then "$custom" enable_ssh; else systemctl enable ssh; fi
fi

if [[ -n "$username" || -n "$password_hash" || -n "$ssh_key" ]]; then
    username=${username:-pi}
    # "*": no password login at all (SSH keys still work); never an empty, password-less account.
    hash=${password_hash:-*}
    if [[ -x "$userconf" ]]; then
        "$userconf" "$username" "$hash"
    else
        echo "$firstuser:$hash" | chpasswd -e
        if [[ -n "$firstuser" && "$firstuser" != "$username" ]]; then
            usermod -l "$username" "$firstuser"
            usermod -m -d "/home/$username" "$username"
            groupmod -n "$username" "$firstuser"
        fi
    fi
fi

if [[ -n "$wifi_ssid" ]]; then
    if [[ -x "$custom" ]]; then
        "$custom" set_wlan "$wifi_ssid" "$wifi_psk" "$wifi_country"
    else
        psk_line="psk=\"$wifi_psk\""
        [[ "$wifi_psk" =~ ^[0-9a-fA-F]{64}$ ]] && psk_line="psk=$wifi_psk"
        cat >/etc/wpa_supplicant/wpa_supplicant.conf <<WPAEOF
country=$wifi_country
ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev
ap_scan=1
update_config=1
network={
	ssid="$wifi_ssid"
	key_mgmt=WPA-PSK SAE
	$psk_line
	ieee80211w=1
}
WPAEOF
        chmod 600 /etc/wpa_supplicant/wpa_supplicant.conf
    fi
    rfkill unblock wifi
    for f in /var/lib/systemd/rfkill/*:wlan; do [[ -e "$f" ]] && echo 0 >"$f"; done
fi

if [[ -x "$custom" ]]; then
    [[ -n "$keymap" ]] && "$custom" set_keymap "$keymap"
    [[ -n "$timezone" ]] && "$custom" set_timezone "$timezone"
elif [[ -n "$timezone" ]]; then
    rm -f /etc/localtime
    echo "$timezone" >/etc/timezone
    dpkg-reconfigure -f noninteractive tzdata
fi

# The install itself waits for the next boot (network for apt); see firstboot.sh.
bash "$boot/voicegender/firmware_config/firstboot/firstboot.sh" enable

rm -f "$boot/firstrun.sh"
sed -i 's| systemd\.run[^ ]*||g; s| systemd\.unit=kernel-command-line\.target||g' "$boot/cmdline.txt"
exit 0
