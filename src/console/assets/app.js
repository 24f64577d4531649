// Cairn console: a single page over the console API (/api/login, /api/session,
// /api/logout, /api/share) and the S3 and admin APIs the server reaches as the logged-in
// user (/api/s3/..., /api/admin/...). Every element is built with textContent: nothing the
// server or a user wrote is ever parsed as HTML.
"use strict";

const state = { csrf: "", user: "", root: false, timer: null };
const PART = 8 * 1024 * 1024;
const MULTIPART_ABOVE = 16 * 1024 * 1024;

// ---------- small helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the CSP, attributes are not
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...nodes) {
  const view = document.getElementById("view");
  view.replaceChildren(...nodes);
}

function notice(text, bad) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = bad ? "notice bad" : "notice";
  n.hidden = !text;
}

function human(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = Number(n) || 0;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return (u === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[u];
}

function encKey(key) {
  return key.split("/").map(encodeURIComponent).join("/");
}

function s3path(bucket) {
  let p = "/api/s3/";
  if (bucket) p += encodeURIComponent(bucket);
  return p;
}

// An object's URL with the query `params`. The key travels as a parameter: in the path the
// browser would resolve "." and ".." segments (even encoded as %2E) before sending, and the
// request would name another object or bucket.
function objpath(bucket, key, params) {
  return s3path(bucket) + qs(Object.assign({ "cairn-key": key }, params || {}));
}

function qs(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null) continue;
    parts.push(v === "" ? encodeURIComponent(k) : encodeURIComponent(k) + "=" + encodeURIComponent(v));
  }
  return parts.length ? "?" + parts.join("&") : "";
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(code ? code + ": " + message : message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, opts) {
  opts = opts || {};
  const headers = Object.assign({}, opts.headers || {});
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch(path, { method, headers, body: opts.body, credentials: "same-origin" });
  if (resp.status === 401 && !opts.noRedirect) {
    loggedOut();
    throw new ApiError(401, "", "Session ended: log in again.");
  }
  if (!resp.ok && !(opts.allow || []).includes(resp.status)) {
    const text = method === "HEAD" ? "" : await resp.text();
    let code = "", message = text || resp.statusText;
    if (text.startsWith("<")) {
      const doc = new DOMParser().parseFromString(text, "application/xml");
      code = tag(doc, "Code");
      message = tag(doc, "Message") || message;
    } else if (text.startsWith("{")) {
      try { const j = JSON.parse(text); code = j.code || ""; message = j.message || j.error || message; } catch (e) { /* as text */ }
    }
    throw new ApiError(resp.status, code, message);
  }
  return resp;
}

async function xml(method, path, opts) {
  const resp = await call(method, path, opts);
  if (resp.status === 404) return null;
  return new DOMParser().parseFromString(await resp.text(), "application/xml");
}

async function admin(method, api, params, body) {
  const resp = await call(method, "/api/admin/" + api + qs(params), {
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

function tag(node, name) {
  const el = node.getElementsByTagName(name)[0];
  return el ? el.textContent : "";
}

function all(node, name) {
  return Array.from(node.getElementsByTagName(name));
}

function failed(e) {
  notice(e.message || String(e), true);
}

// ---------- session ----------

function loggedOut() {
  state.csrf = "";
  clearInterval(state.timer);
  document.getElementById("app").hidden = true;
  document.getElementById("login").hidden = false;
}

function loggedIn(s) {
  state.csrf = s.csrf;
  state.user = s.accessKey;
  state.root = s.root;
  document.getElementById("whoami").textContent = s.accessKey + (s.root ? " (root)" : "");
  document.getElementById("login").hidden = true;
  document.getElementById("app").hidden = false;
  if (!location.hash || location.hash === "#/") location.hash = "#/buckets";
  else route();
}

async function login(ev) {
  ev.preventDefault();
  const err = document.getElementById("loginError");
  err.textContent = "";
  const resp = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      accessKey: document.getElementById("accessKey").value.trim(),
      secretKey: document.getElementById("secretKey").value,
    }),
    credentials: "same-origin",
  });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) { err.textContent = body.error || "Login failed."; return; }
  document.getElementById("secretKey").value = "";
  loggedIn(body);
}

async function logout() {
  try { await call("POST", "/api/logout", { noRedirect: true }); } catch (e) { /* gone anyway */ }
  notice("");
  location.hash = "";
  loggedOut();
}

// ---------- routing ----------

function route() {
  clearInterval(state.timer);
  notice("");
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const page = parts[0] || "buckets";
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.id === "nav-" + page || (page === "browse" || page === "settings") && a.id === "nav-buckets");
  }
  let rest;
  try {
    rest = parts.slice(1).map(decodeURIComponent);
  } catch (e) {
    show();
    notice("This address is not valid: " + e.message, true);
    return;
  }
  // The page being left goes at once: a page that fails shows its error alone.
  show(h("p", { class: "muted" }, "Loading…"));
  const pages = {
    buckets: bucketsPage,
    browse: () => browsePage(rest[0], rest.slice(1).join("/")),
    settings: () => settingsPage(rest[0]),
    identity: identityPage,
    cluster: clusterPage,
    metrics: metricsPage,
  };
  (pages[page] || bucketsPage)().catch(failed);
}

// ---------- buckets ----------

async function bucketsPage() {
  const doc = await xml("GET", "/api/s3/");
  const buckets = all(doc, "Bucket").map((b) => ({ name: tag(b, "Name"), created: tag(b, "CreationDate") }));
  const rows = buckets.map((b) => {
    const used = h("td", { class: "num" }, "…");
    const quota = h("td", { class: "num" }, "…");
    admin("GET", "quota", { bucket: b.name }).then((q) => {
      used.textContent = human(q.used || 0) + " (" + (q.objects || 0) + " objects)";
      quota.textContent = q.quota ? human(q.quota) : "none";
    }).catch(() => { used.textContent = "—"; quota.textContent = "—"; });
    return h("tr", { class: "bucket-row", dataset: { bucket: b.name } },
      h("td", {}, h("a", { href: "#/browse/" + encodeURIComponent(b.name) + "/", class: "open-bucket" }, b.name)),
      h("td", {}, b.created.replace("T", " ").replace(/\..*/, "")),
      used, quota,
      h("td", {},
        h("a", { href: "#/settings/" + encodeURIComponent(b.name), class: "bucket-settings" }, "Settings"), " ",
        h("button", { class: "danger delete-bucket", type: "button", onclick: () => deleteBucket(b.name) }, "Delete")));
  });
  const name = h("input", { id: "newBucket", placeholder: "new-bucket-name", pattern: "[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]" });
  const versioning = h("input", { id: "newVersioning", type: "checkbox" });
  const lock = h("input", { id: "newLock", type: "checkbox" });
  lock.addEventListener("change", () => { if (lock.checked) versioning.checked = true; });
  show(
    h("h2", {}, "Buckets"),
    h("form", { class: "row card", onsubmit: (e) => { e.preventDefault(); createBucket(name.value.trim(), versioning.checked, lock.checked).catch(failed); } },
      name,
      h("label", {}, versioning, " versioning"),
      h("label", {}, lock, " object lock"),
      h("button", { id: "createBucket", class: "primary", type: "submit" }, "Create bucket")),
    h("table", { id: "buckets" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Created"), h("th", { class: "num" }, "Used"), h("th", { class: "num" }, "Quota"), h("th", {}, ""))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No buckets yet.")))));
}

async function createBucket(name, versioning, lock) {
  await call("PUT", s3path(name), { headers: lock ? { "x-amz-bucket-object-lock-enabled": "true" } : {} });
  if (versioning && !lock) {
    await call("PUT", s3path(name) + "?versioning", {
      body: '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>',
    });
  }
  await bucketsPage();
  notice("Created bucket " + name + ".");
}

async function deleteBucket(name) {
  if (!confirm("Delete bucket " + name + "? It must be empty.")) return;
  try {
    await call("DELETE", s3path(name));
    await bucketsPage();
    notice("Deleted bucket " + name + ".");
  } catch (e) { failed(e); }
}

// ---------- object browser ----------

async function browsePage(bucket, prefix) {
  prefix = prefix || "";
  const search = h("input", { id: "search", placeholder: "search by prefix", value: "" });
  const listing = h("tbody", {});
  const progress = h("progress", { id: "uploadProgress", max: 100, value: 0, hidden: true });
  const progressText = h("span", { id: "uploadStatus", class: "muted" });
  const files = h("input", { id: "fileInput", type: "file", multiple: true });
  const folder = h("input", { id: "folderInput", type: "file", multiple: true, webkitdirectory: true });
  const details = h("div", { id: "details" });
  const refresh = () => listInto(bucket, prefix + search.value, listing, details).catch(failed);
  files.addEventListener("change", () => upload(bucket, prefix, Array.from(files.files), progress, progressText, refresh).catch(failed));
  folder.addEventListener("change", () => upload(bucket, prefix, Array.from(folder.files), progress, progressText, refresh).catch(failed));
  const crumbs = h("div", { class: "crumbs row" },
    h("a", { href: "#/buckets" }, "Buckets"), "/",
    h("a", { href: "#/browse/" + encodeURIComponent(bucket) + "/" }, bucket), "/");
  let acc = "";
  for (const part of prefix.split("/").filter(Boolean)) {
    acc += part + "/";
    crumbs.append(h("a", { href: "#/browse/" + encodeURIComponent(bucket) + "/" + encKey(acc) }, part), "/");
  }
  search.addEventListener("keydown", (e) => { if (e.key === "Enter") refresh(); });
  show(
    h("h2", {}, "Objects"),
    crumbs,
    h("div", { class: "row card" },
      h("label", {}, "Upload files ", files),
      h("label", {}, "Upload a folder ", folder),
      progress, progressText),
    h("div", { class: "row" }, search, h("button", { type: "button", onclick: refresh }, "Search"),
      h("a", { href: "#/settings/" + encodeURIComponent(bucket) }, "Bucket settings")),
    h("table", { id: "objects" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", { class: "num" }, "Size"), h("th", {}, "Modified"), h("th", {}, ""))),
      listing),
    details);
  await refresh();
}

// Up to 5,000 entries at a time; past them a "Show more" row lists on from where it stopped.
async function listInto(bucket, prefix, tbody, details, from) {
  const rows = [];
  let token = from;
  do {
    const doc = await xml("GET", s3path(bucket) + qs({ "list-type": "2", delimiter: "/", prefix, "continuation-token": token, "max-keys": "1000" }));
    for (const p of all(doc, "CommonPrefixes")) {
      const name = tag(p, "Prefix");
      rows.push(h("tr", { class: "prefix-row", dataset: { prefix: name } },
        h("td", {}, h("a", { href: "#/browse/" + encodeURIComponent(bucket) + "/" + encKey(name) }, name.slice(prefix.lastIndexOf("/") + 1))),
        h("td", {}), h("td", {}), h("td", {})));
    }
    for (const c of all(doc, "Contents")) {
      const key = tag(c, "Key");
      rows.push(objectRow(bucket, key, tag(c, "Size"), tag(c, "LastModified"), prefix, tbody, details));
    }
    token = tag(doc, "IsTruncated") === "true" ? tag(doc, "NextContinuationToken") : undefined;
  } while (token && rows.length < 5000);
  if (token) {
    const more = h("tr", { id: "moreRow" }, h("td", { colspan: 4 },
      h("button", { id: "showMore", type: "button", onclick: () => { more.remove(); listInto(bucket, prefix, tbody, details, token).catch(failed); } },
        "Show more (this folder has more than " + (tbody.querySelectorAll("tr.object-row, tr.prefix-row").length + rows.length) + " entries)")));
    rows.push(more);
  }
  if (from) {
    tbody.append(...rows);
  } else {
    tbody.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "Nothing here."))]));
  }
}

function objectRow(bucket, key, size, modified, prefix, tbody, details) {
  const href = objpath(bucket, key, { "response-content-disposition": "attachment" });
  return h("tr", { class: "object-row", dataset: { key } },
    h("td", {}, key.slice(prefix.lastIndexOf("/") + 1)),
    h("td", { class: "num" }, human(size)),
    h("td", {}, modified.replace("T", " ").replace(/\..*/, "")),
    h("td", {},
      h("a", { class: "download-object", href, download: key.split("/").pop() }, "Download"), " ",
      h("button", { class: "info-object", type: "button", onclick: () => objectDetails(bucket, key, details).catch(failed) }, "Details"), " ",
      h("button", { class: "share-object", type: "button", onclick: () => shareDialog(bucket, key, null, details) }, "Share"), " ",
      h("button", { class: "danger delete-object", type: "button", onclick: () => deleteObject(bucket, key, null, () => listInto(bucket, prefix, tbody, details)).catch(failed) }, "Delete")));
}

async function deleteObject(bucket, key, versionId, after) {
  if (!confirm("Delete " + key + (versionId ? " (version " + versionId + ")" : "") + "?")) return;
  await call("DELETE", objpath(bucket, key, { versionId: versionId || undefined }));
  notice("Deleted " + key + ".");
  await after();
}

function shareDialog(bucket, key, versionId, details) {
  const expiry = h("select", { id: "shareExpiry" },
    h("option", { value: "3600" }, "1 hour"), h("option", { value: "86400" }, "1 day"),
    h("option", { value: "604800" }, "7 days"));
  const out = h("input", { id: "shareUrl", class: "share mono", readonly: true, placeholder: "the link appears here" });
  const make = async () => {
    const resp = await call("POST", "/api/share", {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ bucket, key, versionId, expirySecs: Number(expiry.value) }),
    });
    out.value = (await resp.json()).url;
    out.select();
  };
  details.replaceChildren(h("div", { class: "card" },
    h("h3", {}, "Share " + key),
    h("div", { class: "row" }, "Expires in", expiry, h("button", { id: "makeShare", class: "primary", type: "button", onclick: () => make().catch(failed) }, "Create link")),
    out,
    h("p", { class: "muted" }, "Anyone with the link can download this object until it expires; it is signed with your access key.")));
}

async function objectDetails(bucket, key, details) {
  const head = await call("HEAD", objpath(bucket, key));
  const meta = [];
  head.headers.forEach((v, k) => {
    if (["content-type", "content-length", "etag", "last-modified", "x-amz-version-id", "x-amz-server-side-encryption", "x-amz-storage-class", "x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold", "cache-control", "content-disposition", "content-encoding"].includes(k) || k.startsWith("x-amz-meta-")) {
      meta.push(h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, v)));
    }
  });
  const tagsDoc = await xml("GET", objpath(bucket, key, { tagging: "" }));
  // Shown and read as S3's x-amz-tagging header writes tags: URL-encoded key=value pairs
  // joined by "&" (a "=" or "&" in a key or value is encoded, never a separator).
  const tags = tagsDoc ? new URLSearchParams(all(tagsDoc, "Tag").map((t) => [tag(t, "Key"), tag(t, "Value")])).toString() : "";
  const tagsInput = h("input", { id: "objectTags", value: tags, placeholder: "key=value&key2=value2 (URL-encoded)", size: 50 });
  const saveTags = async () => {
    const pairs = Array.from(new URLSearchParams(tagsInput.value.trim()));
    const body = '<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>' +
      pairs.map(([k, v]) => "<Tag><Key>" + escapeXml(k || "") + "</Key><Value>" + escapeXml(v || "") + "</Value></Tag>").join("") +
      "</TagSet></Tagging>";
    await call("PUT", objpath(bucket, key, { tagging: "" }), { body });
    notice("Tags saved.");
  };
  const versions = h("tbody", {});
  const versDoc = await xml("GET", s3path(bucket) + qs({ versions: "", prefix: key })).catch(() => null);
  if (versDoc) {
    for (const v of all(versDoc, "Version").concat(all(versDoc, "DeleteMarker"))) {
      if (tag(v, "Key") !== key) continue;
      const id = tag(v, "VersionId");
      const marker = v.tagName === "DeleteMarker";
      versions.append(h("tr", { class: "version-row" },
        h("td", { class: "mono" }, id), h("td", {}, marker ? "delete marker" : human(tag(v, "Size"))),
        h("td", {}, tag(v, "LastModified")), h("td", {}, tag(v, "IsLatest") === "true" ? "latest" : ""),
        h("td", {}, marker ? "" : h("a", { href: objpath(bucket, key, { versionId: id, "response-content-disposition": "attachment" }) }, "Download"), " ",
          marker ? "" : h("button", { type: "button", onclick: () => shareDialog(bucket, key, id, details) }, "Share"), " ",
          h("button", { class: "danger", type: "button", onclick: () => deleteObject(bucket, key, id, () => objectDetails(bucket, key, details)).catch(failed) }, "Delete"))));
    }
  }
  details.replaceChildren(h("div", { class: "card", id: "objectDetails" },
    h("h3", {}, key),
    h("table", {}, h("tbody", {}, meta)),
    h("div", { class: "row", style: "margin-top:10px" }, "Tags", tagsInput, h("button", { id: "saveTags", type: "button", onclick: () => saveTags().catch(failed) }, "Save tags")),
    h("h3", {}, "Versions"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Version"), h("th", {}, "Size"), h("th", {}, "Modified"), h("th", {}, ""), h("th", {}, ""))), versions)));
}

function escapeXml(s) {
  return s.replace(/[<>&'"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[c]);
}

// Uploads one file after another: small ones in one PUT, large ones as multipart uploads
// of 8 MiB parts; progress counts bytes over all files.
async function upload(bucket, prefix, list, progress, text, after) {
  if (!list.length) return;
  const total = list.reduce((s, f) => s + f.size, 0) || 1;
  let done = 0;
  progress.hidden = false;
  const tick = (n) => {
    progress.value = Math.floor(((done + n) * 100) / total);
    text.textContent = human(done + n) + " of " + human(total);
  };
  for (const f of list) {
    const key = prefix + (f.webkitRelativePath || f.name);
    if (f.size > MULTIPART_ABOVE) await multipart(bucket, key, f, tick, () => done);
    else await send("PUT", objpath(bucket, key), f, f.type, (n) => tick(n));
    done += f.size;
    tick(0);
  }
  text.textContent = "Uploaded " + list.length + " file(s), " + human(total) + ".";
  notice("Uploaded " + list.length + " file(s).");
  await after();
}

function send(method, url, body, type, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open(method, url);
    x.setRequestHeader("X-CSRF-Token", state.csrf);
    if (type) x.setRequestHeader("Content-Type", type);
    x.upload.onprogress = (e) => onProgress(e.loaded);
    x.onload = () => {
      if (x.status >= 200 && x.status < 300) return resolve(x);
      const doc = new DOMParser().parseFromString(x.responseText || "<x/>", "application/xml");
      reject(new ApiError(x.status, tag(doc, "Code"), tag(doc, "Message") || x.statusText));
    };
    x.onerror = () => reject(new ApiError(0, "", "Upload failed: connection error."));
    x.send(body);
  });
}

async function multipart(bucket, key, file, tick, base) {
  const start = await xml("POST", objpath(bucket, key, { uploads: "" }), { headers: file.type ? { "Content-Type": file.type } : {} });
  const uploadId = tag(start, "UploadId");
  const parts = [];
  try {
    for (let n = 1, off = 0; off < file.size; n++, off += PART) {
      const x = await send("PUT", objpath(bucket, key, { partNumber: String(n), uploadId }), file.slice(off, off + PART), null,
        (loaded) => tick(off + loaded));
      parts.push("<Part><PartNumber>" + n + "</PartNumber><ETag>" + escapeXml(x.getResponseHeader("ETag") || "") + "</ETag></Part>");
    }
    await call("POST", objpath(bucket, key, { uploadId }), {
      body: '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' + parts.join("") + "</CompleteMultipartUpload>",
    });
  } catch (e) {
    await call("DELETE", objpath(bucket, key, { uploadId })).catch(() => {});
    throw e;
  }
  return base;
}

// ---------- bucket settings ----------

const CONFIGS = [
  { name: "Policy", sub: "policy", kind: "json", del: true },
  { name: "CORS", sub: "cors", kind: "xml", del: true },
  { name: "Lifecycle", sub: "lifecycle", kind: "xml", del: true },
  { name: "Default encryption", sub: "encryption", kind: "xml", del: true },
  { name: "Object lock", sub: "object-lock", kind: "xml", del: false },
  { name: "Event notifications", sub: "notification", kind: "xml", del: false },
  { name: "Tags", sub: "tagging", kind: "xml", del: true },
];

async function settingsPage(bucket) {
  const vdoc = await xml("GET", s3path(bucket) + "?versioning");
  const status = (vdoc && tag(vdoc, "Status")) || "Unversioned";
  const setVersioning = async (s) => {
    await call("PUT", s3path(bucket) + "?versioning", {
      body: '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>' + s + "</Status></VersioningConfiguration>",
    });
    notice("Versioning " + s.toLowerCase() + ".");
    await settingsPage(bucket);
  };
  const quota = await admin("GET", "quota", { bucket }).catch(() => null);
  const quotaInput = h("input", { id: "quotaSize", placeholder: "e.g. 10GiB (0 removes)", value: quota && quota.quota ? String(quota.quota) : "" });
  const editors = CONFIGS.map((c) => configEditor(bucket, c));
  show(
    h("h2", {}, "Settings of " + bucket),
    h("div", { class: "row" }, h("a", { href: "#/browse/" + encodeURIComponent(bucket) + "/" }, "Browse objects")),
    h("div", { class: "card" }, h("h3", {}, "Versioning"),
      h("div", { class: "row" }, h("span", { id: "versioningStatus" }, status),
        h("button", { id: "enableVersioning", type: "button", onclick: () => setVersioning("Enabled").catch(failed) }, "Enable"),
        h("button", { id: "suspendVersioning", type: "button", disabled: status === "Unversioned", onclick: () => setVersioning("Suspended").catch(failed) }, "Suspend"))),
    h("div", { class: "card" }, h("h3", {}, "Quota"),
      h("div", { class: "row" }, "Used ", h("b", {}, quota ? human(quota.used || 0) : "—"), quotaInput,
        h("button", { type: "button", onclick: async () => {
          try { await admin("PUT", "quota", { bucket, size: quotaInput.value.trim() || "0" }); notice("Quota saved."); await settingsPage(bucket); } catch (e) { failed(e); }
        } }, "Set quota"))),
    h("div", { class: "grid" }, editors));
}

function configEditor(bucket, c) {
  const area = h("textarea", { id: "config-" + c.sub, spellcheck: "false" });
  const msg = h("p", { class: "muted" }, "loading…");
  const url = s3path(bucket) + "?" + c.sub;
  const load = async () => {
    const resp = await call("GET", url, { allow: [404] });
    if (resp.status === 404) { area.value = ""; msg.textContent = "Not set."; return; }
    let text = await resp.text();
    if (c.kind === "json") { try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* as sent */ } }
    area.value = text;
    msg.textContent = "";
  };
  const save = async () => {
    if (c.kind === "json") {
      try { JSON.parse(area.value); } catch (e) { msg.textContent = "Not valid JSON: " + e.message; return; }
    }
    await call("PUT", url, { body: area.value });
    msg.textContent = "Saved.";
  };
  const del = async () => { await call("DELETE", url); area.value = ""; msg.textContent = "Removed."; };
  load().catch((e) => { msg.textContent = e.message; });
  return h("div", { class: "card" }, h("h3", {}, c.name), area,
    h("div", { class: "row", style: "margin-top:8px" },
      h("button", { type: "button", onclick: () => save().catch((e) => { msg.textContent = e.message; }) }, "Save"),
      c.del ? h("button", { class: "danger", type: "button", onclick: () => del().catch((e) => { msg.textContent = e.message; }) }, "Remove") : null),
    msg);
}

// ---------- identity ----------

async function identityPage() {
  const [users, groups, policies] = await Promise.all([
    admin("GET", "iam/users"), admin("GET", "iam/groups"), admin("GET", "iam/policies"),
  ]);
  const userRows = users.map((u) => h("tr", { class: "user-row", dataset: { user: u.access_key } },
    h("td", {}, u.access_key), h("td", {}, u.enabled ? "enabled" : "disabled"),
    h("td", {}, u.policies.concat(u.group_policies || []).join(", ")), h("td", {}, u.groups.join(", ")),
    h("td", {},
      h("button", { type: "button", onclick: () => admin("POST", u.enabled ? "iam/user/disable" : "iam/user/enable", { "access-key": u.access_key }).then(identityPage).catch(failed) }, u.enabled ? "Disable" : "Enable"), " ",
      h("button", { class: "danger", type: "button", onclick: () => confirm("Delete user " + u.access_key + "?") && admin("DELETE", "iam/user", { "access-key": u.access_key }).then(identityPage).catch(failed) }, "Delete"))));
  const newUser = h("input", { id: "newUser", placeholder: "access key" });
  const newSecret = h("input", { id: "newSecret", type: "password", placeholder: "secret key (8+ characters)" });
  const policyName = h("input", { id: "policyName", placeholder: "policy name" });
  const policyDoc = h("textarea", { id: "policyDocument", spellcheck: "false" },
    JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::example/*"] }] }, null, 2));
  const policyMsg = h("p", { class: "error", id: "policyError" });
  const attachPolicy = h("select", { id: "attachPolicy" }, policies.map((p) => h("option", { value: p.name }, p.name)));
  const attachTo = h("input", { id: "attachUser", placeholder: "user or group:NAME" });
  const savePolicy = async () => {
    policyMsg.textContent = "";
    let doc;
    try { doc = JSON.parse(policyDoc.value); } catch (e) { policyMsg.textContent = "Not valid JSON: " + e.message; return; }
    try {
      await admin("PUT", "iam/policy", { name: policyName.value.trim() }, doc);
      notice("Saved policy " + policyName.value.trim() + ".");
      await identityPage();
    } catch (e) { policyMsg.textContent = e.message; }
  };
  const keys = h("tbody", {});
  admin("GET", "iam/accesskeys").then((list) => {
    keys.replaceChildren(...list.map((k) => h("tr", {}, h("td", { class: "mono" }, k.access_key), h("td", {}, k.parent), h("td", {}, String(k.kind)), h("td", {}, k.expiry || ""))));
  }).catch((e) => keys.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "muted" }, e.message))));
  show(
    h("h2", {}, "Identity"),
    h("div", { class: "card" }, h("h3", {}, "Users"),
      h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); admin("PUT", "iam/user", { "access-key": newUser.value.trim() }, { secret_key: newSecret.value }).then(identityPage).catch(failed); } },
        newUser, newSecret, h("button", { class: "primary", type: "submit" }, "Add user")),
      h("table", { id: "users" }, h("thead", {}, h("tr", {}, h("th", {}, "Access key"), h("th", {}, "State"), h("th", {}, "Policies"), h("th", {}, "Groups"), h("th", {}, ""))), h("tbody", {}, userRows))),
    h("div", { class: "card" }, h("h3", {}, "Groups"),
      h("table", { id: "groups" }, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Members"), h("th", {}, "Policies"))),
        h("tbody", {}, groups.map((g) => h("tr", {}, h("td", {}, g.name), h("td", {}, g.members.join(", ")), h("td", {}, g.policies.join(", "))))))),
    h("div", { class: "card" }, h("h3", {}, "Policies"),
      h("table", { id: "policies" }, h("tbody", {}, policies.map((p) => h("tr", {},
        h("td", {}, h("a", { href: "#/identity", onclick: (e) => { e.preventDefault(); policyName.value = p.name; policyDoc.value = JSON.stringify(p.document, null, 2); } }, p.name)),
        h("td", {}, p.builtin ? "built-in" : ""))))),
      h("div", { class: "row", style: "margin-top:10px" }, policyName, h("button", { id: "savePolicy", class: "primary", type: "button", onclick: savePolicy }, "Save policy")),
      policyDoc, policyMsg,
      h("div", { class: "row" }, "Attach", attachPolicy, "to", attachTo,
        h("button", { type: "button", onclick: () => {
          const who = attachTo.value.trim();
          const params = who.startsWith("group:") ? { name: attachPolicy.value, group: who.slice(6) } : { name: attachPolicy.value, user: who };
          admin("POST", "iam/policy/attach", params).then(identityPage).catch(failed);
        } }, "Attach"))),
    h("div", { class: "card" }, h("h3", {}, "Access keys"),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Access key"), h("th", {}, "User"), h("th", {}, "Kind"), h("th", {}, "Expiry"))), keys)));
}

// ---------- cluster ----------

async function clusterPage() {
  const draw = async () => {
    const info = await admin("GET", "info");
    const heal = info.heal || {};
    const speed = h("select", { id: "healSpeed" }, ["slow", "normal", "fast"].map((s) => h("option", { value: s, selected: String(heal.speed).toLowerCase() === s }, s)));
    speed.addEventListener("change", () => admin("POST", "heal/speed", { value: speed.value }).then(() => notice("Heal speed set to " + speed.value + ".")).catch(failed));
    const seq = heal.sequence;
    const sc = info.scanner || {};
    const drives = [];
    for (const set of info.sets) {
      for (const d of set.drives) {
        const pct = d.total ? Math.round((d.used * 100) / d.total) : 0;
        drives.push(h("tr", { class: "drive-row", dataset: { endpoint: d.endpoint, state: d.state } },
          h("td", {}, String(set.index + 1)), h("td", { class: "mono" }, d.endpoint),
          h("td", { class: "state-" + d.state }, d.state + (d.reason ? " (" + d.reason + ")" : "")),
          h("td", {}, h("div", { class: "bar" }, h("div", { style: "width:" + pct + "%" }))),
          h("td", { class: "num" }, human(d.used) + " / " + human(d.total))));
      }
    }
    show(
      h("h2", {}, "Cluster"),
      h("div", { class: "card" },
        h("div", { class: "row" }, "Cairn " + info.version, h("span", { class: "muted" }, "deployment " + info.deployment_id), "region " + info.region),
        h("table", { id: "nodes" }, h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "State"), h("th", { class: "num" }, "Drives online"))),
          h("tbody", {}, (info.nodes.length ? info.nodes : [{ node: info.node || "this node", state: "online", drives_online: drives.filter((d) => d.dataset.state === "online").length, drives: drives.length }]).map((n) =>
            h("tr", {}, h("td", {}, n.node), h("td", { class: "state-" + n.state }, n.state), h("td", { class: "num" }, n.drives_online + " / " + n.drives)))))),
      poolsCard(info, draw),
      h("div", { class: "card" }, h("h3", {}, "Erasure sets"),
        h("p", {}, info.sets.map((s) => "set " + (s.index + 1) + ((info.pools || []).length > 1 ? " (pool " + s.pool + ")" : "") + ": EC " + s.data + "+" + s.parity).join(" · ")),
        h("table", { id: "drives" }, h("thead", {}, h("tr", {}, h("th", {}, "Set"), h("th", {}, "Drive"), h("th", {}, "State"), h("th", {}, "Usage"), h("th", { class: "num" }, "Used"))),
          h("tbody", {}, drives))),
      h("div", { class: "card", id: "heal" }, h("h3", {}, "Heal"),
        h("div", { class: "row" }, "Speed", speed, "Queued for repair: " + (heal.queued || 0)),
        seq ? h("p", { id: "healSequence" }, "Heal sequence " + seq.id + ": " + seq.scanned + (seq.total ? " of " + seq.total : "") + " objects scanned, " + seq.healed + " healed, " + seq.failed + " failed")
          : h("p", { class: "muted" }, "No heal sequence has run since start."),
        (heal.replacements || []).map((r) => h("p", {}, "Replaced drive: " + JSON.stringify(r))),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Worker"), h("th", {}, "State"), h("th", { class: "num" }, "Done"), h("th", { class: "num" }, "Failed"))),
          h("tbody", {}, (heal.workers || []).map((w) => h("tr", {}, h("td", {}, w.name), h("td", {}, w.state), h("td", { class: "num" }, w.done), h("td", { class: "num" }, w.failed))))),
        h("p", { id: "scanner" }, sc.last_finished
          ? "Scanner: last cycle took " + sc.last_cycle_secs.toFixed(1) + " s, ended " + new Date(sc.last_finished * 1000).toLocaleString() + " (" + sc.cycles + " cycles)"
          : "Scanner: no cycle finished on this node yet" + (sc.objects_done ? " (" + sc.objects_done + " objects into the current one)" : "") + ".")));
  };
  await draw();
  state.timer = setInterval(() => draw().catch(failed), 3000);
}

// The server pools: space, state, decommission progress, and the commands that move data.
function poolsCard(info, redraw) {
  const pools = info.pools || [];
  const reb = info.rebalance;
  const act = (method, api, params, done) =>
    admin(method, api, params).then(() => { notice(done); return redraw(); }).catch(failed);
  const progress = (p) => {
    if (!p) return "";
    const secs = Math.max(1, (p.updated || 0) - (p.started || 0));
    const rate = p.bytes / secs;
    const left = Math.max(0, (p.total_bytes || 0) - p.bytes);
    const eta = !p.finished && rate > 0 && left > 0 ? ", about " + Math.ceil(left / rate) + " s left" : "";
    const end = p.finished ? (p.canceled ? ", canceled" : ", finished") : (p.error ? ", stopped: " + p.error : "");
    return p.objects + " of " + (p.total_objects || 0) + " objects moved (" + human(p.bytes) + " of " + human(p.total_bytes || 0) + ", " + human(rate) + "/s), " + p.failed + " failed" + eta + end;
  };
  const rows = pools.map((p) => {
    const used = Math.max(0, p.total - p.free);
    const pct = p.total ? Math.round((used * 100) / p.total) : 0;
    const button = p.state === "decommissioning"
      ? h("button", { class: "cancel-decommission", type: "button", onclick: () => act("DELETE", "pools/decommission", { pool: String(p.number) }, "Decommission of pool " + p.number + " canceled.") }, "Cancel decommission")
      : p.state === "decommissioned" ? ""
        : h("button", { class: "decommission-pool danger", type: "button", onclick: () =>
          confirm("Decommission pool " + p.number + "? Every object moves to the other pools; the pool can then be removed from the server arguments.")
          && act("POST", "pools/decommission", { pool: String(p.number) }, "Decommission of pool " + p.number + " started.") }, "Decommission");
    return h("tr", { class: "pool-row", dataset: { pool: String(p.number), state: p.state } },
      h("td", {}, String(p.number)), h("td", { class: "mono" }, p.arg),
      h("td", { class: "nowrap" }, p.sets + " × " + p.set_size),
      h("td", { class: "state-" + p.state }, p.state),
      h("td", {}, h("div", { class: "bar" }, h("div", { style: "width:" + pct + "%" }))),
      h("td", { class: "num nowrap" }, human(used) + " / " + human(p.total)),
      h("td", { class: "pool-progress" }, p.decommission ? "Decommission: " + progress(p.decommission) : ""),
      h("td", {}, button));
  });
  const running = reb && reb.state === "running";
  const rebalance = h("div", { class: "row", id: "rebalance" },
    "Rebalance: " + (reb ? reb.state + " (goal " + Math.round(reb.goal * 100) + "% used, " + progress(reb.progress) + ")" : "never run"),
    pools.length > 1 ? h("button", { id: running ? "stopRebalance" : "startRebalance", type: "button", onclick: () => running
      ? act("DELETE", "pools/rebalance", undefined, "Rebalance stopped.")
      : act("POST", "pools/rebalance", undefined, "Rebalance started.") }, running ? "Stop rebalance" : "Start rebalance") : "");
  return h("div", { class: "card", id: "pools" }, h("h3", {}, "Server pools"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Pool"), h("th", {}, "Argument"), h("th", {}, "Sets × drives"), h("th", {}, "State"),
      h("th", {}, "Usage"), h("th", { class: "num" }, "Used"), h("th", {}, "Progress"), h("th", {}, ""))),
    h("tbody", {}, rows)),
    rebalance);
}

// ---------- metrics ----------

async function metricsPage() {
  const points = [];
  const charts = {
    rate: chart("Requests per second", "chart-rate"),
    throughput: chart("Throughput (bytes per second)", "chart-throughput"),
    latency: chart("Mean latency (ms)", "chart-latency"),
  };
  const table = h("tbody", {});
  show(h("h2", {}, "Metrics"), h("p", { class: "muted" }, "This node's S3 requests, sampled every 2 seconds."),
    h("div", { class: "grid" }, charts.rate.el, charts.throughput.el, charts.latency.el),
    h("table", { id: "requests" }, h("thead", {}, h("tr", {}, h("th", {}, "Operation"), h("th", { class: "num" }, "OK"), h("th", { class: "num" }, "4xx"), h("th", { class: "num" }, "5xx"))), table));
  const sample = async () => {
    const m = await admin("GET", "metrics");
    const t = m.totals || {};
    points.push({ at: Date.now(), ...t });
    if (points.length > 61) points.shift();
    const series = (f) => points.slice(1).map((p, i) => f(points[i], p, (p.at - points[i].at) / 1000 || 1));
    charts.rate.draw(series((a, b, dt) => (b.requests - a.requests) / dt));
    charts.throughput.draw(series((a, b, dt) => (b.sent_bytes + b.received_bytes - a.sent_bytes - a.received_bytes) / dt), human);
    charts.latency.draw(series((a, b) => (b.duration_count > a.duration_count ? ((b.duration_secs - a.duration_secs) * 1000) / (b.duration_count - a.duration_count) : 0)));
    table.replaceChildren(...Object.entries(m.requests).map(([op, o]) => h("tr", {}, h("td", {}, op), h("td", { class: "num" }, o.ok), h("td", { class: "num" }, o.client_errors), h("td", { class: "num" }, o.server_errors))));
  };
  await sample();
  state.timer = setInterval(() => sample().catch(failed), 2000);
}

function chart(title, id) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 600 140");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS(ns, "polyline");
  svg.append(line);
  const last = h("span", { class: "muted" }, "");
  const el = h("div", { class: "card chart", id }, h("h3", {}, title, " ", last), svg);
  return {
    el,
    draw(values, fmt) {
      const max = Math.max(1e-9, ...values);
      line.setAttribute("points", values.map((v, i) => (i * 10) + "," + (135 - (v / max) * 125).toFixed(1)).join(" "));
      const v = values.length ? values[values.length - 1] : 0;
      last.textContent = values.length ? "now " + (fmt ? fmt(v) + "/s" : v.toFixed(v < 10 ? 2 : 0)) : "";
    },
  };
}

// ---------- start ----------

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("loginForm").addEventListener("submit", (e) => login(e).catch((err) => {
    document.getElementById("loginError").textContent = err.message;
  }));
  document.getElementById("logout").addEventListener("click", () => logout());
  window.addEventListener("hashchange", () => { if (state.csrf) route(); });
  const resp = await fetch("/api/session", { credentials: "same-origin" });
  if (resp.ok) loggedIn(await resp.json());
  else loggedOut();
});
