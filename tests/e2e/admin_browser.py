#!/usr/bin/env python3
"""admin_browser.py - drives the download server's admin page (/conf) in a
real browser (headless Chromium through chromedriver, Selenium 4.8 API) for
tests/e2e/test_admin.sh.

    admin_browser.py --base http://127.0.0.1:PORT --shots DIR --profile DIR

It starts one browser and then reads commands from stdin, one a line, the
arguments separated by tabs; it answers each with lines

    val KEY<TAB>VALUE    a value read from the page (line breaks as spaces)
    shot PATH            a screenshot it saved
    bad TEXT             the command could not be carried out (e.g. a timeout)
    end                  the answer is complete

so that the shell test decides every check itself.  Secrets (passwords,
PINs) are given as the path of a file holding them and never written out.

Commands (ID is an element id, without '#'):
    get PATH                 open BASE+PATH
    reload                   reload the page
    type ID TEXT             clear the input and type TEXT
    type_file ID FILE        clear the input and type FILE's first line (a secret)
    click ID                 click (radio, checkbox; no page change expected)
    submit ID                click a submit button and wait for the next page
    referrer POLICY          from now on, put <meta name="referrer" content=POLICY>
                             into the page before each submit ("" = stop): a
                             work-around for a page whose Referrer-Policy header
                             (no-referrer) makes the browser send "Origin: null"
    upload ID FILE TARGET    give FILE to a file input; wait until the page's
                             script has put it into TARGET (textarea / hidden)
    wait ID                  wait (bounded) for ID:  val found:ID 1|0
    probe ID...              for each ID: val has:ID, shown:ID, text:ID,
                             value:ID, class:ID
    selected ID              val selected:ID 1|0
    source_has FILE          val source_has 1|0: the page source contains
                             FILE's first line
    url                      val url
    session_to FILE          writes "cookie NAME=VALUE" and "csrf TOKEN" (the
                             session's cookie and the page's CSRF token) to a
                             new 0600 FILE
    shot NAME                save DIR/NAME.png (the whole page)
    quit
"""
import argparse
import base64
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 5           # seconds: an element on a page already loaded
NAV_WAIT = 20      # seconds: a page load after a submit (a save checks the signing setup)


def out(*parts):
    sys.stdout.write(" ".join(parts).replace("\n", " ") + "\n")
    sys.stdout.flush()


def val(key, value):
    out("val", key + "\t" + " ".join(str(value).split()))


def secret(path):
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\r\n")


class Browser:
    def __init__(self, base, shots, profile):
        self.base = base.rstrip("/")
        self.shots = shots
        o = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-extensions", "--no-first-run",
                  # loopback only, whatever the environment's proxy variables say
                  "--no-proxy-server",
                  "--window-size=1280,1000", "--user-data-dir=" + profile):
            o.add_argument(a)
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        self.d.set_page_load_timeout(NAV_WAIT)
        self.d.implicitly_wait(0)
        self.referrer = ""

    # ---------------------------------------------------------------- helpers

    def el(self, id_):
        return self.d.find_element(By.ID, id_)

    def ready(self):
        WebDriverWait(self.d, NAV_WAIT).until(
            lambda d: d.execute_script("return document.readyState") == "complete")

    # ---------------------------------------------------------------- commands

    def c_get(self, path):
        self.d.get(self.base + path)
        self.ready()

    def mark(self):
        """Marks the current document, so that new_page() can tell the next one."""
        self.d.execute_script("window.__sg_old_page = true;")

    def new_page(self):
        """Waits until another document than the marked one is loaded."""
        def loaded(d):
            try:
                return d.execute_script("return !window.__sg_old_page && "
                                        "document.readyState === 'complete';")
            except WebDriverException:   # in the middle of the navigation
                return False
        WebDriverWait(self.d, NAV_WAIT).until(loaded)

    def c_reload(self):
        self.mark()
        self.d.refresh()
        self.new_page()

    def c_type(self, id_, text):
        e = WebDriverWait(self.d, WAIT).until(EC.element_to_be_clickable((By.ID, id_)))
        e.clear()
        e.send_keys(text)

    def c_type_file(self, id_, path):
        self.c_type(id_, secret(path))

    def c_click(self, id_):
        WebDriverWait(self.d, WAIT).until(EC.element_to_be_clickable((By.ID, id_))).click()

    def c_referrer(self, policy=""):
        self.referrer = policy

    def c_submit(self, id_):
        button = WebDriverWait(self.d, WAIT).until(EC.element_to_be_clickable((By.ID, id_)))
        if self.referrer:
            self.d.execute_script(
                "var m = document.createElement('meta'); m.name = 'referrer';"
                "m.content = arguments[0]; document.head.appendChild(m);", self.referrer)
        self.mark()
        button.click()
        self.new_page()

    def c_upload(self, id_, path, target):
        self.el(id_).send_keys(os.path.abspath(path))
        WebDriverWait(self.d, WAIT).until(
            lambda d: len(d.find_element(By.ID, target).get_attribute("value") or "") > 0)
        val("uploaded:" + target, len(self.el(target).get_attribute("value")))

    def c_wait(self, id_):
        try:
            WebDriverWait(self.d, WAIT).until(EC.presence_of_element_located((By.ID, id_)))
            val("found:" + id_, 1)
        except TimeoutException:
            val("found:" + id_, 0)

    def c_probe(self, *ids):
        for id_ in ids:
            try:
                e = self.el(id_)
            except NoSuchElementException:
                val("has:" + id_, 0)
                val("shown:" + id_, 0)
                val("text:" + id_, "")
                val("value:" + id_, "")
                val("class:" + id_, "")
                continue
            val("has:" + id_, 1)
            val("shown:" + id_, 1 if e.is_displayed() else 0)
            val("text:" + id_, e.get_attribute("textContent") or "")
            val("value:" + id_, e.get_attribute("value") or "")
            val("class:" + id_, e.get_attribute("class") or "")

    def c_selected(self, id_):
        val("selected:" + id_, 1 if self.el(id_).is_selected() else 0)

    def c_source_has(self, path):
        s = secret(path)
        val("source_has", 1 if s and s in self.d.page_source else 0)

    def c_url(self):
        val("url", self.d.current_url)

    def c_session_to(self, path):
        cookies = [c for c in self.d.get_cookies() if c["name"] == "sg_admin"]
        csrf = self.d.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            if cookies:
                f.write("cookie sg_admin=%s\n" % cookies[0]["value"])
            f.write("csrf %s\n" % csrf)
        val("session_cookie", 1 if cookies else 0)
        # What the browser was told about the cookie (not its value).
        if cookies:
            c = cookies[0]
            val("cookie_flags", "httpOnly=%s sameSite=%s path=%s" %
                (c.get("httpOnly"), c.get("sameSite"), c.get("path")))

    def c_shot(self, name):
        path = os.path.join(self.shots, name + ".png")
        try:    # the whole page, not only the window
            png = self.d.execute_cdp_cmd("Page.captureScreenshot",
                                         {"format": "png", "captureBeyondViewport": True})
            with open(path, "wb") as f:
                f.write(base64.b64decode(png["data"]))
        except WebDriverException:
            self.d.save_screenshot(path)
        out("shot", path)

    def quit(self):
        try:
            self.d.quit()
        except WebDriverException:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--shots", required=True)
    ap.add_argument("--profile", required=True)
    a = ap.parse_args()
    os.makedirs(a.shots, exist_ok=True)
    t0 = time.monotonic()
    try:
        b = Browser(a.base, a.shots, a.profile)
    except WebDriverException as e:
        out("bad", "the browser did not start: " + (e.msg or str(e)).splitlines()[0])
        out("end")
        return 1
    out("val", "browser\t%s %s (%.1f s)" % (b.d.capabilities.get("browserName"),
                                           b.d.capabilities.get("browserVersion"),
                                           time.monotonic() - t0))
    out("end")
    try:
        for line in sys.stdin:
            args = line.rstrip("\n").split("\t")
            cmd = args[0]
            if cmd == "quit":
                out("end")
                break
            f = getattr(b, "c_" + cmd, None)
            try:
                if f is None:
                    out("bad", "unknown command " + cmd)
                else:
                    f(*args[1:])
            except TimeoutException:
                out("bad", "%s %s: timed out (page: %s)" % (cmd, args[1] if len(args) > 1 else "",
                                                           b.d.current_url))
            except (WebDriverException, OSError, TypeError) as e:
                msg = getattr(e, "msg", None) or str(e)
                out("bad", "%s %s: %s: %s" % (cmd, args[1] if len(args) > 1 else "",
                                             type(e).__name__, (msg or "").splitlines()[0][:300]))
            out("end")
    finally:
        b.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
