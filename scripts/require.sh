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

# A project-local virtual environment holding pinned, hash-checked requirements, made once:
# pinned_venv DIRECTORY REQUIREMENTS COMMAND (the command that shows the environment is complete).
pinned_venv() {
  [ -x "$1/bin/$3" ] && return
  echo "installing $2 into $1" >&2
  python3 -m venv "$1"
  "$1/bin/pip" install --quiet --require-hashes -r "$2"
}
