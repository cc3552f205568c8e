#!/bin/sh
# Fake get.k3s.io installer (POSIX sh, as the real one is run with `sh`): "installs" a fake k3s
# binary, its uninstall script and the systemd unit under the directories the real installer
# would use. FAKE_INSTALLER_FAIL=1 fails after the binary is in place (a half-finished install,
# as a real failure would leave).
set -eu
: "${FAKES_DIR:?FAKES_DIR must be set}" "${FAKE_CALLS:?FAKE_CALLS must be set}"
printf 'installer version=%s exec=%s\n' "${INSTALL_K3S_VERSION:-}" "${INSTALL_K3S_EXEC:-}" >>"$FAKE_CALLS"
bin="${INSTALL_K3S_BIN_DIR:?}"
units="${INSTALL_K3S_SYSTEMD_DIR:?}"
service=k3s
case "${INSTALL_K3S_EXEC:-server}" in
    agent*) service=k3s-agent ;;
esac
mkdir -p "$bin" "$units"
cp "$FAKES_DIR/k3s" "$bin/k3s"
printf '%s\n' "$INSTALL_K3S_VERSION" >"$bin/.k3s-version"
cat >"$bin/$service-uninstall.sh" <<UNINSTALL
#!/bin/sh
printf '%s\n' "$service-uninstall.sh" >>"\$FAKE_CALLS"
rm -f "$bin/k3s" "$bin/.k3s-version" "$units/$service.service" "$bin/$service-uninstall.sh"
UNINSTALL
chmod +x "$bin/$service-uninstall.sh"
printf '[Unit]\nDescription=fake %s\n' "$service" >"$units/$service.service"
if [ "${FAKE_INSTALLER_FAIL:-0}" = 1 ]; then
    echo "[ERROR] fake installer failure" >&2
    exit 1
fi
