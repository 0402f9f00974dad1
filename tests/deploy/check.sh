#!/usr/bin/env bash
# The deploy files (deploy/kubernetes, deploy/systemd) checked as CI can:
#   1. the Kubernetes manifests against the Kubernetes schemas of the oldest
#      and newest versions we support (kubernetes-validate --strict: unknown
#      fields are errors too);
#   2. what the schemas cannot see (consistency.py): every LETTA_BRIDGE_*
#      setting named exists in the binary's --help, the grace periods cover the
#      drain, probes, selectors, replicas, anti-affinity, tokens from a Secret;
#   3. the systemd unit with `systemd-analyze verify`, on a copy whose
#      ExecStart names the binary under test (the unit's own path,
#      /usr/local/bin/letta-bridge, is not installed here); any line it prints
#      (a warning about an unknown or malformed setting) fails the check.
# Usage: tests/deploy/check.sh <letta-bridge binary>. Needs .ci/cache/venv
# (kubernetes-validate, from .ci/requirements.txt) and systemd-analyze.
set -euo pipefail
cd "$(dirname "$0")/../.."
BRIDGE=${1:?usage: tests/deploy/check.sh <letta-bridge binary>}
BRIDGE=$(realpath "$BRIDGE")
VENV=.ci/cache/venv/bin

for version in 1.30.0 1.37.0; do
    "$VENV/kubernetes-validate" --strict --quiet -k "$version" deploy/kubernetes/*.yaml
    echo "deploy/kubernetes: valid against Kubernetes $version (strict)"
done

"$BRIDGE" --help > "${TMPDIR:-/tmp}/letta-bridge-help.$$"
trap 'rm -rf "${TMPDIR:-/tmp}/letta-bridge-help.$$" "${unit_dir:-}"' EXIT
"$VENV/python" tests/deploy/consistency.py "${TMPDIR:-/tmp}/letta-bridge-help.$$"

unit_dir=$(mktemp -d)
unit=deploy/systemd/letta-bridge.service
grep -qx 'ExecStart=/usr/local/bin/letta-bridge' "$unit" \
    || { echo "$unit: ExecStart is not /usr/local/bin/letta-bridge" >&2; exit 1; }
sed "s#^ExecStart=/usr/local/bin/letta-bridge\$#ExecStart=$BRIDGE#" "$unit" > "$unit_dir/letta-bridge.service"
if ! out=$(systemd-analyze verify "$unit_dir/letta-bridge.service" 2>&1) || [[ -n $out ]]; then
    echo "$unit: systemd-analyze verify reported:" >&2
    echo "$out" >&2
    exit 1
fi
echo "$unit: systemd-analyze verify printed nothing"
