"""What the Kubernetes schemas and systemd-analyze cannot see in deploy/.

Usage: consistency.py <file holding `letta-bridge --help`>. Each failed rule
is printed; the exit status is 1 if any failed.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
failures = []


def check(ok, message):
    if not ok:
        failures.append(message)


def seconds(text):
    """`10s`, `1m` or `15` as seconds."""
    match = re.fullmatch(r"(\d+)\s*(ms|s|m)?", str(text).strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    value, unit = int(match.group(1)), match.group(2) or "s"
    return {"ms": value / 1000, "s": value, "m": value * 60}[unit]


help_text = Path(sys.argv[1]).read_text()
known = set(re.findall(r"LETTA_BRIDGE_[A-Z_]+", help_text))
check(len(known) > 20, f"--help names only {len(known)} settings: is it the bridge's help?")

manifests = {}
for path in sorted((ROOT / "deploy/kubernetes").glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        manifests[doc["kind"]] = doc
        for name in set(re.findall(r"LETTA_BRIDGE_[A-Z_]+", path.read_text())):
            check(name in known, f"{path.name}: {name} is not a setting of the bridge")

unit_path = ROOT / "deploy/systemd/letta-bridge.service"
unit = unit_path.read_text()
for name in set(re.findall(r"LETTA_BRIDGE_[A-Z_]+", unit)):
    check(name in known, f"{unit_path.name}: {name} is not a setting of the bridge")

deployment = manifests["Deployment"]
pod = deployment["spec"]["template"]
labels = pod["metadata"]["labels"]
spec = pod["spec"]
container = spec["containers"][0]
env = {e["name"]: e for e in container["env"]}

check(deployment["spec"]["replicas"] >= 3, "the Deployment runs fewer than three instances")
check(deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(),
      "the Deployment's selector does not match its pods")
for kind in ("Service", "PodDisruptionBudget"):
    selector = manifests[kind]["spec"]["selector"]
    selector = selector.get("matchLabels", selector)
    check(selector.items() <= labels.items(), f"the {kind}'s selector does not match the pods")

check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness is not /readyz")
check(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness is not /healthz")
port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
check(env["LETTA_BRIDGE_LISTEN"]["value"].endswith(f":{port}"),
      "LETTA_BRIDGE_LISTEN's port is not the container's http port")

for name in ("LETTA_BRIDGE_RUNTIME_TOKEN", "LETTA_BRIDGE_CLIENT_TOKEN", "LETTA_BRIDGE_ADMIN_TOKEN",
             "LETTA_BRIDGE_CLUSTER_URL"):
    check(name in env and "secretKeyRef" in env[name].get("valueFrom", {}),
          f"{name} does not come from a Secret")

grace = seconds(env["LETTA_BRIDGE_SHUTDOWN_GRACE"]["value"])
pause = seconds(container["lifecycle"]["preStop"]["exec"]["command"][-1])
check(spec["terminationGracePeriodSeconds"] > pause + grace,
      f"terminationGracePeriodSeconds ({spec['terminationGracePeriodSeconds']}) does not cover "
      f"the preStop pause ({pause} s) plus LETTA_BRIDGE_SHUTDOWN_GRACE ({grace} s)")
anti = spec.get("affinity", {}).get("podAntiAffinity", {})
terms = anti.get("preferredDuringSchedulingIgnoredDuringExecution", []) + [
    {"podAffinityTerm": t} for t in anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])]
check(any(t["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
          for t in terms), "no anti-affinity keeps the instances apart")
check("memory" in container["resources"].get("requests", {}), "no memory request")
check(manifests["PodDisruptionBudget"]["spec"].get("maxUnavailable") == 1
      or manifests["PodDisruptionBudget"]["spec"].get("minAvailable", 0) >= 2,
      "the PodDisruptionBudget lets more than one instance go at once")

unit_grace = seconds(re.search(r"^Environment=LETTA_BRIDGE_SHUTDOWN_GRACE=(\S+)$", unit, re.M).group(1))
stop = seconds(re.search(r"^TimeoutStopSec=(\S+)$", unit, re.M).group(1))
check(stop > unit_grace, f"TimeoutStopSec ({stop} s) does not cover LETTA_BRIDGE_SHUTDOWN_GRACE ({unit_grace} s)")

for failure in failures:
    print(f"deploy: {failure}", file=sys.stderr)
if failures:
    sys.exit(1)
print(f"deploy: consistent ({len(known)} settings known to the binary)")
