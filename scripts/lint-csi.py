#!/usr/bin/env python3
"""Checks on deploy/kubernetes/csi/ that schema validation cannot make: names, socket
paths and mount propagation consistent across objects, and the StorageClass secret keys
the CSI sidecars expect. Exits non-zero with one line per problem."""
import glob
import re
import sys

import yaml

problems = []


def fail(msg):
    problems.append(msg)


driver_src = open("src/csi/mod.rs").read()
m = re.search(r'pub const DRIVER_NAME: &str = "([^"]+)"', driver_src)
driver = m.group(1) if m else fail("DRIVER_NAME not found in src/csi/mod.rs")

docs = []
for path in sorted(glob.glob("deploy/kubernetes/csi/*.yaml")):
    for d in yaml.safe_load_all(open(path)):
        if d:
            docs.append((path, d))
kinds = {}
for path, d in docs:
    kinds.setdefault(d["kind"], []).append((path, d))

for path, d in kinds.get("CSIDriver", []):
    spec = d["spec"]
    if d["metadata"]["name"] != driver:
        fail(f"{path}: CSIDriver {d['metadata']['name']} != driver name {driver}")
    if spec.get("attachRequired") is not False:
        fail(f"{path}: attachRequired must be false (no ControllerPublish)")
    if spec.get("podInfoOnMount") is not True:
        fail(f"{path}: podInfoOnMount must be true")
if not kinds.get("CSIDriver"):
    fail("no CSIDriver object")

secret_keys = {}
for path, d in kinds.get("Secret", []):
    secret_keys[(d["metadata"]["namespace"], d["metadata"]["name"])] = set(
        (d.get("stringData") or {}).keys()) | set((d.get("data") or {}).keys())

for path, d in kinds.get("StorageClass", []):
    if d["provisioner"] != driver:
        fail(f"{path}: StorageClass provisioner {d['provisioner']} != {driver}")
    params = d.get("parameters", {})
    for p in params:
        if p.startswith("csi.storage.k8s.io/") and not re.fullmatch(
            r"csi\.storage\.k8s\.io/(provisioner|controller-expand|node-stage|node-publish)"
            r"-secret-(name|namespace)", p):
            fail(f"{path}: unknown CSI secret parameter {p}")
    for kind in ["provisioner", "controller-expand", "node-stage", "node-publish"]:
        name = params.get(f"csi.storage.k8s.io/{kind}-secret-name")
        ns = params.get(f"csi.storage.k8s.io/{kind}-secret-namespace")
        if not name or not ns:
            fail(f"{path}: {kind} secret name and namespace must both be set")
            continue
        keys = secret_keys.get((ns, name))
        if keys is None:
            fail(f"{path}: secret {ns}/{name} is not defined")
        elif not {"accessKeyID", "secretAccessKey"} <= keys:
            fail(f"{path}: secret {ns}/{name} lacks accessKeyID/secretAccessKey")
    if d.get("allowVolumeExpansion") is not True:
        fail(f"{path}: allowVolumeExpansion should be true (ControllerExpandVolume)")

for path, d in kinds.get("Deployment", []) + kinds.get("DaemonSet", []):
    pod = d["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    plugin = [c for c in pod["containers"]
              if c.get("args", [None])[0] == "csi" and "--mode=mounter" not in c["args"]]
    if len(plugin) != 1:
        fail(f"{path}: expected one cairn csi container")
        continue
    plugin = plugin[0]
    endpoint = next((a.split("=", 1)[1] for a in plugin["args"] if a.startswith("--endpoint=")), None)
    if not endpoint or not endpoint.startswith("unix://"):
        fail(f"{path}: cairn csi needs --endpoint=unix://...")
        continue
    sock = endpoint[len("unix://"):]
    for c in pod["containers"]:
        for mnt in c.get("volumeMounts", []):
            prop = mnt.get("mountPropagation")
            if prop is not None and prop not in ("None", "HostToContainer", "Bidirectional"):
                fail(f"{path}: {c['name']}: mountPropagation {prop!r} is not a valid mode")
        for a in c.get("args", []):
            if a.startswith("--csi-address=") and a.split("=", 1)[1] != sock:
                fail(f"{path}: {c['name']} talks to {a.split('=', 1)[1]}, plugin listens on {sock}")
            if a.startswith("--kubelet-registration-path="):
                reg = a.split("=", 1)[1]
                host = volumes.get("plugin-dir", {}).get("hostPath", {}).get("path")
                if reg != f"{host}/csi.sock" or f"/{driver}/" not in reg:
                    fail(f"{path}: registration path {reg} != plugin-dir hostPath {host}/csi.sock")
    if d["kind"] == "DaemonSet":
        mounts = {m["mountPath"]: m for m in plugin.get("volumeMounts", [])}
        kubelet = mounts.get("/var/lib/kubelet")
        if not kubelet or kubelet.get("mountPropagation") != "Bidirectional":
            fail(f"{path}: node plugin must mount /var/lib/kubelet with Bidirectional propagation")
        if "/dev/fuse" not in mounts:
            fail(f"{path}: node plugin needs /dev/fuse")
        if not plugin.get("securityContext", {}).get("privileged"):
            fail(f"{path}: node plugin must be privileged (bidirectional propagation, mounts)")
        if "--mode=node" not in plugin["args"]:
            fail(f"{path}: DaemonSet plugin must run --mode=node")
        # Mounts must outlive the plugin container: a mounter container starts them.
        mounters = [c for c in pod["containers"] if "--mode=mounter" in c.get("args", [])]
        want = next((a.split("=", 1)[1] for a in plugin["args"] if a.startswith("--mounter=")), None)
        if len(mounters) != 1 or not want:
            fail(f"{path}: node pod needs one mounter container and the plugin's --mounter")
        else:
            m = mounters[0]
            got = next((a.split("=", 1)[1] for a in m["args"] if a.startswith("--endpoint=")), None)
            if got != want:
                fail(f"{path}: plugin --mounter {want} != mounter --endpoint {got}")
            mm = {x["mountPath"]: x for x in m.get("volumeMounts", [])}
            if mm.get("/var/lib/kubelet", {}).get("mountPropagation") != "Bidirectional":
                fail(f"{path}: mounter must mount /var/lib/kubelet Bidirectional")
            if "/dev/fuse" not in mm or not m.get("securityContext", {}).get("privileged"):
                fail(f"{path}: mounter needs /dev/fuse and privileged mode")
            if mm.get("/var/lib/cairn-csi", {}).get("name") != mounts.get("/var/lib/cairn-csi", {}).get("name"):
                fail(f"{path}: mounter and plugin must share the state dir (mount logs, caches)")
        if pod.get("shareProcessNamespace") is not True:
            fail(f"{path}: shareProcessNamespace must be true (the plugin signals mount processes)")

for p in problems:
    print(f"lint-csi: {p}")
sys.exit(1 if problems else 0)
