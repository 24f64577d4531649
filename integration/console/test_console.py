"""The web console in a real browser (headless Chromium through Selenium's WebDriver).

Run by integration/tests/console.rs against a real server; settings come from the
environment: CONSOLE_URL, ACCESS_KEY/SECRET_KEY (root), RO_ACCESS_KEY/RO_SECRET_KEY (a
user with the built-in readonly policy), UNPLUG_DRIVE (a drive folder to take away),
WORK (a scratch folder), SCREENSHOTS (optional: where to save a PNG of each page).
Exits non-zero, with the reason, on the first check that fails.
"""

import hashlib
import os
import re
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ["CONSOLE_URL"]
WORK = os.environ["WORK"]
SHOTS = os.environ.get("SCREENSHOTS")
DOWNLOADS = os.path.join(WORK, "downloads")
os.makedirs(DOWNLOADS, exist_ok=True)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,960", "--disable-gpu"):
        o.add_argument(a)
    o.add_experimental_option("prefs", {
        "download.default_directory": DOWNLOADS,
        "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=o, service=service)


d = browser()
wait = WebDriverWait(d, 30)


def css(sel):
    return wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, sel)))


def visible(sel):
    return wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, sel)))


def click(sel):
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, sel))).click()


def click_fresh(sel):
    """Click an element of a page that redraws itself (a redraw between finding and clicking
    leaves a stale element: find it again)."""
    for _ in range(5):
        try:
            click(sel)
            return
        except StaleElementReferenceException:
            time.sleep(0.2)
    click(sel)


def text_in(sel, text, timeout=30):
    WebDriverWait(d, timeout).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, sel), text))


def shot(name):
    if SHOTS:
        time.sleep(0.5)
        d.save_screenshot(os.path.join(SHOTS, name + ".png"))


def login(access, secret):
    d.get(URL)
    visible("#loginForm")
    d.find_element(By.ID, "accessKey").clear()
    d.find_element(By.ID, "accessKey").send_keys(access)
    d.find_element(By.ID, "secretKey").send_keys(secret)
    click("#loginButton")
    text_in("#whoami", access)


def page_fetch(method, path, csrf_header):
    """A fetch from inside the page (its cookie), returning the status."""
    return d.execute_async_script(
        """
        const [method, path, withCsrf, done] = arguments;
        const headers = {};
        if (withCsrf) headers["X-CSRF-Token"] = window.__csrf || "";
        fetch(path, {method, headers, credentials: "same-origin"}).then(r => done(r.status), e => done(-1));
        """,
        method, path, csrf_header)


def page_call(method, path, body="", headers=None):
    """A call from inside the page with its cookie and CSRF token: (status, text)."""
    return d.execute_async_script(
        """
        const [method, path, body, extra, done] = arguments;
        const headers = Object.assign({"X-CSRF-Token": state.csrf}, extra);
        fetch(path, {method, headers, body: method === "GET" || method === "HEAD" ? undefined : body, credentials: "same-origin"})
          .then(async r => done([r.status, await r.text()]), e => done([-1, String(e)]));
        """,
        method, path, body, headers or {})


def put_many(bucket, keys):
    """Empty objects, eight calls at a time, from inside the page."""
    d.set_script_timeout(300)
    bad = d.execute_async_script(
        """
        const [bucket, keys, done] = arguments;
        let next = 0, bad = 0;
        const one = async () => {
          while (next < keys.length) {
            const k = keys[next++];
            const r = await fetch("/api/s3/" + bucket + "/" + k, {method: "PUT", headers: {"X-CSRF-Token": state.csrf}, body: ""});
            if (r.status !== 200) bad++;
          }
        };
        Promise.all(Array.from({length: 8}, one)).then(() => done(bad));
        """,
        bucket, keys)
    d.set_script_timeout(30)
    return bad


def check(cond, why):
    if not cond:
        shot("failure")
        print("FAILED:", why, file=sys.stderr)
        sys.exit(1)


try:
    # A wrong secret is refused on the page.
    d.get(URL)
    visible("#loginForm")
    d.find_element(By.ID, "accessKey").send_keys(os.environ["ACCESS_KEY"])
    d.find_element(By.ID, "secretKey").send_keys("wrong-secret")
    shot("login")
    click("#loginButton")
    text_in("#loginError", "Invalid")

    login(os.environ["ACCESS_KEY"], os.environ["SECRET_KEY"])
    cookie = d.get_cookie("cairn_session")
    check(cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", f"session cookie flags: {cookie}")
    # A state-changing call without the CSRF token is refused, even with the cookie.
    check(page_fetch("PUT", "/api/s3/csrf-probe", False) == 403, "PUT without a CSRF token was not refused")

    # Create a bucket with versioning.
    css("#newBucket").send_keys("console-test")
    click("#newVersioning")
    click("#createBucket")
    css('tr.bucket-row[data-bucket="console-test"]')
    shot("buckets")

    # Upload a 20 MiB file (a multipart upload with progress) and see it listed.
    big = os.path.join(WORK, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(20 * 1024 * 1024))
    click('tr.bucket-row[data-bucket="console-test"] a.open-bucket')
    css("#fileInput").send_keys(big)
    text_in("#uploadStatus", "Uploaded 1 file(s)", timeout=120)
    row = css('tr.object-row[data-key="big.bin"]')
    check("20.0 MiB" in row.text, f"listed size: {row.text}")
    shot("objects")

    # Download it through the browser and compare the bytes.
    click('tr.object-row[data-key="big.bin"] a.download-object')
    target = os.path.join(DOWNLOADS, "big.bin")
    deadline = time.time() + 60
    while time.time() < deadline and not (os.path.exists(target) and not any(n.endswith(".crdownload") for n in os.listdir(DOWNLOADS))):
        time.sleep(0.2)
    check(os.path.exists(target), "the download did not arrive")
    check(sha(target) == sha(big), "downloaded bytes differ")

    # Share a link and fetch it with curl (no cookie, no credentials).
    click('tr.object-row[data-key="big.bin"] button.share-object')
    click("#makeShare")
    wait.until(lambda _: d.find_element(By.ID, "shareUrl").get_attribute("value"))
    link = d.find_element(By.ID, "shareUrl").get_attribute("value")
    check("X-Amz-Signature=" in link, f"not a presigned link: {link}")
    shared = os.path.join(WORK, "shared.bin")
    subprocess.run(["curl", "-sf", "-o", shared, link], check=True, timeout=60)
    check(sha(shared) == sha(big), "the shared link served other bytes")
    shot("share")

    # Details: metadata, tags and the version history of a versioned bucket.
    click('tr.object-row[data-key="big.bin"] button.info-object')
    css("#objectDetails tr.version-row")
    shot("object-details")

    # A key with ".." segments acts on itself, not on the object its path would resolve to.
    check(page_call("PUT", "/api/s3/victim")[0] == 200, "bucket victim")
    check(page_call("PUT", "/api/s3/victim/x.txt", "keep me")[0] == 200, "victim object")
    # (A browser resolves ".." in a path even as %2E%2E: the console names keys in its query.)
    decoy = "/api/s3/console-test?cairn-key=..%2Fvictim%2Fx.txt"
    check(page_call("PUT", decoy, "decoy")[0] == 200, "decoy object")
    check(page_call("GET", "/api/s3/victim/x.txt")[1] == "keep me", "the decoy went elsewhere")
    d.get(URL + "#/browse/console-test/%2E%2E/victim/")
    click_fresh('tr.object-row[data-key="../victim/x.txt"] button.delete-object')
    wait.until(EC.alert_is_present()).accept()
    text_in("#notice", "Deleted")
    check(page_call("GET", "/api/s3/victim/x.txt")[0] == 200, "deleting ../victim/x.txt deleted victim/x.txt")
    check(page_call("GET", decoy)[0] == 404, "the .. key was not deleted")

    # Tags whose values hold "=", "+" and spaces survive a save from the details panel.
    tagging = ('<Tagging><TagSet><Tag><Key>k</Key><Value>x=y+1 z</Value></Tag>'
               '<Tag><Key>plain</Key><Value>a</Value></Tag></TagSet></Tagging>')
    put_tags = page_call("PUT", "/api/s3/console-test/big.bin?tagging", tagging)
    check(put_tags[0] == 200, f"tagging: {put_tags}")
    d.get(URL + "#/browse/console-test/")
    click_fresh('tr.object-row[data-key="big.bin"] button.info-object')
    css("#objectDetails #saveTags")
    click("#saveTags")
    text_in("#notice", "Tags saved")
    status, body = page_call("GET", "/api/s3/console-test/big.bin?tagging")
    check("<Value>x=y+1 z</Value>" in body and "<Value>a</Value>" in body, f"tags after a save: {body}")

    # An HTML object opened through the console does not run in its origin (a download).
    check(page_call("PUT", "/api/s3/console-test/p.js", "document.title = 'PWNED';", {"Content-Type": "text/javascript"})[0] == 200, "p.js")
    page = '<html><head><script src="/api/s3/console-test/p.js"></script></head><body>hi</body></html>'
    check(page_call("PUT", "/api/s3/console-test/page.html", page, {"Content-Type": "text/html"})[0] == 200, "page.html")
    for q in ("", "?response-content-type=text/html&response-content-disposition=inline"):
        d.get(URL + "api/s3/console-test/page.html" + q)
        time.sleep(1)
        check("PWNED" not in d.title, f"an uploaded page ran script in the console's origin ({q})")

    # A folder of more than 5,000 entries lists them all, the rest behind "Show more".
    d.get(URL + "#/buckets")
    visible("#newBucket")
    check(page_call("PUT", "/api/s3/many")[0] == 200, "bucket many")
    check(put_many("many", ["k%05d" % i for i in range(5001)]) == 0, "putting 5,001 objects")
    d.get(URL + "#/browse/many/")
    css("#showMore")
    check(len(d.find_elements(By.CSS_SELECTOR, "tr.object-row")) == 5000, "first 5,000")
    click("#showMore")
    css('tr.object-row[data-key="k05000"]')
    check(len(d.find_elements(By.CSS_SELECTOR, "tr.object-row")) == 5001, "after Show more")

    # Settings, identity and metrics pages render.
    d.get(URL + "#/settings/console-test")
    text_in("#versioningStatus", "Enabled")
    shot("settings")
    d.get(URL + "#/identity")
    css('tr.user-row[data-user="%s"]' % os.environ["RO_ACCESS_KEY"])
    # The policy editor refuses a document the server finds malformed.
    name = css("#policyName")
    name.send_keys("broken")
    doc = d.find_element(By.ID, "policyDocument")
    doc.clear()
    doc.send_keys('{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]}')
    click("#savePolicy")
    text_in("#policyError", "Malformed")
    shot("identity")
    d.get(URL + "#/metrics")
    text_in("#requests", "CompleteMultipartUpload")
    time.sleep(4.5)
    shot("metrics")

    # The cluster page shows a drive going offline.
    d.get(URL + "#/cluster")
    css('tr.drive-row[data-state="online"]')
    shot("cluster")
    # Server pools: both active; pool 2 (where the objects landed) is decommissioned from the
    # page, its progress shown to the end; the last active pool cannot be.
    css('tr.pool-row[data-pool="1"][data-state="active"]')
    css('tr.pool-row[data-pool="2"][data-state="active"]')
    click_fresh('tr.pool-row[data-pool="2"] button.decommission-pool')
    wait.until(EC.alert_is_present()).accept()
    try:
        WebDriverWait(d, 120).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr.pool-row[data-pool="2"][data-state="decommissioned"]')))
    except TimeoutException:
        check(False, "pool 2 was not shown decommissioned: " + css("#pools").text)
    d.execute_script("document.getElementById('pools').scrollIntoView()")
    shot("pools-decommissioned")
    moved = re.search(r"Decommission: (\d+) of (\d+) objects moved", css('tr.pool-row[data-pool="2"]').text)
    check(moved and int(moved.group(1)) >= 1 and moved.group(1) == moved.group(2) and "finished" in css('tr.pool-row[data-pool="2"]').text,
          "decommission progress: " + css('tr.pool-row[data-pool="2"]').text)
    click_fresh('tr.pool-row[data-pool="1"] button.decommission-pool')
    wait.until(EC.alert_is_present()).accept()
    text_in("#notice", "last active pool")
    drive = os.environ["UNPLUG_DRIVE"]
    os.rename(drive, drive + ".unplugged")
    try:
        WebDriverWait(d, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr.drive-row[data-state="offline"]')))
    except TimeoutException:
        check(False, "no drive shown offline on the cluster page")
    shot("cluster-offline")

    # Log out: the session is gone on the server (its old cookie no longer opens the API).
    old = d.get_cookie("cairn_session")["value"]
    click("#logout")
    visible("#loginForm")
    check(page_fetch("GET", "/api/session", False) == 401, "the session still answers after logout")
    status = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Cookie: cairn_session=" + old,
                             URL + "api/session"], capture_output=True, text=True, timeout=30).stdout
    check(status == "401", f"the old session cookie still works after logout: {status}")

    # A read-only user browses but cannot delete.
    login(os.environ["RO_ACCESS_KEY"], os.environ["RO_SECRET_KEY"])
    d.get(URL + "#/browse/console-test/")
    click('tr.object-row[data-key="big.bin"] button.delete-object')
    wait.until(EC.alert_is_present()).accept()
    text_in("#notice", "AccessDenied")
    click("#nav-buckets")
    click('tr.bucket-row[data-bucket="console-test"] a.open-bucket')
    css('tr.object-row[data-key="big.bin"]')
    shot("readonly-denied")
    print("console: all checks passed")
except Exception:
    shot("failure")
    raise
finally:
    d.quit()
