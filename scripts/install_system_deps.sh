#!/usr/bin/env bash
# Install the system packages the project needs beyond Python: bubblewrap (`bwrap`), the sandbox
# that runs model-written programs for the code reward. Idempotent and quiet; Debian/Ubuntu only.
set -euo pipefail

if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install_system_deps: bubblewrap is missing and this user can neither install packages" \
         "nor use sudo; ask an administrator to run: apt-get install bubblewrap" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_system_deps: no apt-get here; install bubblewrap (the 'bwrap' binary) with" \
         "your system's package manager" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Quiet on success; on failure show apt's own output, which says what went wrong.
if ! { $SUDO apt-get update -qq && \
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap; } \
       >"$log" 2>&1; then
    cat "$log" >&2
    echo "install_system_deps: installing bubblewrap failed (see apt output above)" >&2
    exit 1
fi

if ! command -v bwrap >/dev/null 2>&1; then
    echo "install_system_deps: apt-get finished but 'bwrap' is still not on PATH" >&2
    exit 1
fi
