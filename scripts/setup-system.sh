#!/usr/bin/env bash
# Debian packages Blindspot needs on a fresh machine: the sandbox (bubblewrap), reproducible
# fast font subsetting for WeasyPrint (libharfbuzz-subset0), the PDF tools used to look at
# reports (poppler-utils) and fonts. Installs only what is missing; never fails the build when it
# cannot install (the runner then refuses to start and says why).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
mapfile -t wanted < <(grep -v '^\s*#' "$here/system-packages.txt" | sed '/^\s*$/d' | sort -u)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup-system: missing Debian packages: ${missing[*]}" >&2
  echo "setup-system: install them as root: apt-get install -y ${missing[*]}" >&2
  exit 0
fi
echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "setup-system: could not install ${missing[*]}" >&2
exit 0
