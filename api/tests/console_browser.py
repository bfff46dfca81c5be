"""A tenant-admin's day in the console, in Debian's headless Chromium driven by Selenium.

Run by the Rust test `console_browser` with: base URL, the tenant, a tenant-admin token, a
table (zone.name), the directory for screenshots, the path of axe.min.js. Prints one JSON
object of what it saw; the Rust side asserts on it and on the server's state.
"""
import http.server
import json
import sys
import threading

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

base, tenant, token, table, shots, axe_path, platform_token = sys.argv[1:8]
zone, name = table.split(".")
axe_source = open(axe_path, encoding="utf-8").read()
seen = {"axe": {}, "xss": {}, "screenshots": []}

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1800",
             "--disable-gpu", "--no-first-run", "--disable-extensions"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 20)


def page_done():
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def active_id():
    return driver.execute_script("return document.activeElement && document.activeElement.id")


def tab_to(element_id, limit=40):
    """Moves focus with Tab only until the element has it."""
    for _ in range(limit):
        if active_id() == element_id:
            return
        driver.switch_to.active_element.send_keys(Keys.TAB)
    raise AssertionError(f"Tab never reached #{element_id}")


def audit(label):
    """axe-core on the page: serious and critical violations, by rule."""
    violations = driver.execute_async_script(
        axe_source
        + "\n;const done = arguments[arguments.length - 1];"
        + "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
        + "v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))));"
    )
    seen["axe"][label] = [v for v in violations if v["impact"] in ("serious", "critical")]


def xss(label):
    seen["xss"][label] = driver.execute_script("return typeof window.__xss")


def shot(label):
    path = f"{shots}/{label}.png"
    driver.save_screenshot(path)
    seen["screenshots"].append(path)


try:
    driver.set_script_timeout(30)
    # Sign in by keyboard alone.
    driver.get(f"{base}/console/sign-in")
    page_done()
    audit("sign-in")
    shot("sign-in")
    tab_to("token")
    driver.switch_to.active_element.send_keys(token)
    driver.switch_to.active_element.send_keys(Keys.TAB)
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait.until(lambda d: d.current_url.endswith(f"/console/tenants/{tenant}"))
    page_done()
    seen["after_sign_in"] = driver.current_url
    xss("overview")
    audit("overview")
    shot("tenant-overview")

    # Read the usage chart: its bars' values are in SVG <title>s.
    charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
    seen["charts"] = [c.find_element(By.TAG_NAME, "title").get_attribute("textContent") for c in charts]
    seen["usage_bars"] = [
        t.get_attribute("textContent")
        for t in driver.find_elements(By.CSS_SELECTOR, "svg.chart g.bar rect title")
    ]

    # Change a zone policy: an invalid value first.
    retention = driver.find_element(By.ID, "silver-retention")
    retention.clear()
    retention.send_keys("<script>window.__xss=1</script>")
    retention.submit()
    page_done()
    seen["invalid_error"] = driver.find_element(By.ID, "silver-retention-error").text
    seen["invalid_marked"] = driver.find_element(By.ID, "silver-retention").get_attribute("aria-invalid")
    xss("invalid-zone")
    retention = driver.find_element(By.ID, "silver-retention")
    retention.clear()
    retention.send_keys("400")
    retention.submit()
    page_done()
    seen["zone_saved"] = "Zone policy saved." in driver.page_source
    seen["timeline"] = driver.find_element(By.CSS_SELECTOR, "ol.timeline[aria-label='Lifecycle of silver']").text

    # Issue a token by keyboard, with a payload in the free-text fields; then revoke it.
    driver.get(f"{base}/console/tenants/{tenant}/tokens")
    page_done()
    audit("tokens")
    tab_to("subject")
    driver.switch_to.active_element.send_keys("<img/src/onerror=window.__xss=1>")
    tab_to("role")
    driver.switch_to.active_element.send_keys("analyst")
    tab_to("ttl_seconds")
    field = driver.switch_to.active_element
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("3600")
    tab_to("groups")
    driver.switch_to.active_element.send_keys("<svg onload=window.__xss=1>")
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    page_done()
    seen["issued"] = driver.find_element(By.ID, "issued-token").text
    xss("token-issued")
    audit("token-issued")
    shot("tokens")
    revoke = driver.find_element(By.CSS_SELECTOR, "button[aria-label^='Revoke the token of <img']")
    revoke.click()
    page_done()
    seen["revoked_notice"] = "Token revoked" in driver.page_source
    xss("token-revoked")

    # The audit log, filtered with a payload too.
    driver.get(f"{base}/console/tenants/{tenant}/audit")
    page_done()
    action = driver.find_element(By.ID, "action")
    action.send_keys("\"><script>window.__xss=1</script>")
    action.submit()
    page_done()
    xss("audit")
    audit("audit")

    # Queue maintenance on the table.
    driver.get(f"{base}/console/tenants/{tenant}/tables/{zone}/{name}")
    page_done()
    audit("table")
    driver.find_element(By.XPATH, "//button[text()='Queue maintenance']").click()
    wait.until(lambda d: "run=" in d.current_url)
    page_done()
    seen["queued"] = driver.find_element(By.XPATH, "//h3[text()='The run you queued']").is_displayed()
    xss("table")
    shot("table")

    # A page on another origin posts a form to the console: refused.
    attack = (
        f"<!doctype html><title>elsewhere</title><form id=f method=post "
        f"action='{base}/console/tenants/{tenant}/zones/silver'>"
        "<input name=retention_days value=5><input name=csrf value=guess></form>"
        "<script>document.getElementById('f').submit()</script>"
    ).encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(attack)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver.get(f"http://127.0.0.1:{server.server_port}/")
    wait.until(lambda d: d.current_url.startswith(base))
    page_done()
    seen["cross_origin_page"] = driver.find_element(By.TAG_NAME, "main").text
    server.shutdown()

    # The sharing and governance page, then sign out and look at the fleet as a platform-admin.
    driver.get(f"{base}/console/tenants/{tenant}/governance")
    page_done()
    audit("governance")
    xss("governance")
    driver.find_element(By.XPATH, "//button[text()='Sign out']").click()
    wait.until(lambda d: "/console/sign-in" in d.current_url)
    page_done()
    seen["signed_out"] = "Signed out." in driver.page_source
    driver.find_element(By.ID, "token").send_keys(platform_token, Keys.ENTER)
    wait.until(lambda d: d.current_url.endswith("/console/fleet"))
    page_done()
    audit("fleet")
    xss("fleet")
    shot("fleet")
    seen["fleet_chart"] = driver.find_element(By.CSS_SELECTOR, "svg.chart title").get_attribute("textContent")
finally:
    driver.quit()

print(json.dumps(seen))
