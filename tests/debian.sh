# Sourced by the platform scripts: Debian packages installed only when missing.
#
# `debian_missing PKG...` prints the packages that are not fully installed (for every
# architecture they are installed for): a package left half-installed by an interrupted
# dpkg counts as missing, so it is installed again.
# `debian_install PKG...` first lets dpkg finish whatever an interrupted run left behind
# (apt refuses to run until that is done; with nothing pending it does nothing), then
# installs.

debian_missing() {
  local pkg status
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null || true)
    if [ -z "$status" ] || grep -qv '^install ok installed$' <<<"$status"; then
      echo "$pkg"
    fi
  done
}

debian_install() {
  local sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd dpkg --configure -a
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
