# Sourced by the project's scripts.

# Installs the Debian packages that provide the missing commands: require command[:package] …
require() {
  local need=() tool
  for tool in "$@"; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
  done
  [ ${#need[@]} -eq 0 ] && return
  echo "installing ${need[*]}" >&2
  apt-get install -y -qq "${need[@]}" >/dev/null ||
    { echo "cannot install ${need[*]}: install them (Debian: apt-get install ${need[*]})" >&2; exit 1; }
}
