# Sourced by the platform scripts: Debian packages installed only when missing.
#
# `debian_missing PKG...` prints the packages that are not fully installed: a package
# left half-installed by an interrupted dpkg counts as missing, so it is reinstalled.
# `debian_install PKG...` first finishes whatever an interrupted dpkg left behind
# (apt refuses to run until that is done), then installs.

debian_missing() {
  local pkg
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || echo "$pkg"
  done
}

debian_install() {
  local sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  if [ -n "$(dpkg --audit 2>/dev/null)" ]; then
    echo "dpkg was interrupted earlier: finishing its work first" >&2
    $sudo_cmd dpkg --configure -a
  fi
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
