#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine, then runs every
# check and test (lints, unit and property tests, and the integration tests that start real
# cairn processes and drive them with aws-sdk-s3, boto3, the AWS CLI, rclone, s3cmd, and the
# AWS and MinIO JavaScript SDKs).
set -euo pipefail
cd "$(dirname "$0")/.."

# External S3 clients: rclone, s3cmd and s3fs-fuse from Debian, awscli and boto3 in a venv.
missing=()
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v s3cmd >/dev/null 2>&1 || missing+=(s3cmd)
command -v s3fs >/dev/null 2>&1 || missing+=(s3fs)
# The console's browser tests: headless Chromium and its WebDriver.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
venv=.venv-test
if ! "$venv/bin/python" -c "import boto3, awscli, kubernetes_validate, prometheus_client, selenium" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check awscli boto3 kubernetes-validate prometheus-client selenium
fi
export PATH="$PWD/$venv/bin:$PATH"
# Python s3fs/fsspec in a venv of its own: it pins the botocore that aiobotocore supports.
fsspec_venv=.venv-fsspec
if ! "$fsspec_venv/bin/python" -c "import s3fs" >/dev/null 2>&1; then
  python3 -m venv "$fsspec_venv"
  "$fsspec_venv/bin/pip" install -q --disable-pip-version-check s3fs
fi
export CAIRN_FSSPEC_PYTHON="$PWD/$fsspec_venv/bin/python"
# JavaScript SDKs (AWS SDK v3, MinIO's) for the client matrix, exactly as locked.
if [ ! -d integration/js/node_modules ]; then
  (cd integration/js && npm ci --no-audit --no-fund --silent)
fi

# Deployment manifests, validated offline against the Kubernetes schemas.
kubernetes-validate --strict --quiet deploy/kubernetes/*.yaml deploy/kubernetes/csi/*.yaml
# ...and what schemas miss: names, socket paths, propagation and secret keys agree.
python scripts/lint-csi.py

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

# Integration tests run the release binary (fast, and what users run).
cargo build --release --bin cairn
export CAIRN_BIN="$PWD/target/release/cairn"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (f > 0) }' "$log"
