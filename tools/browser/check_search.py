"""Drives the inspection report in headless Chromium.

    tools/browser/run REPORT_DIR/index.html QUERY [QUERY ...]

Opens the page from file://, types each QUERY into the search box, waits
for results, and prints one JSON object: per query the number of results
and the first titles; the browser console's errors and warnings; whether
the search index loaded. Exit status 1 when a query finds nothing or the
console has an error, 2 on usage errors. Browser and driver are Debian's
(/usr/bin/chromium, /usr/bin/chromedriver); nothing is downloaded.
"""

import json
import pathlib
import shutil
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]


def which(*names):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    sys.exit(f"check_search: none of {names} found; run tools/browser/setup")


def main(argv):
    if len(argv) < 2 or any(a in ("-h", "--help") for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    page = pathlib.Path(argv[0]).resolve()
    queries = argv[1:]
    profile = tempfile.mkdtemp(prefix="simclr-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = which("chromium", "chromium-browser")
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=which("chromedriver"))
    driver = webdriver.Chrome(service=service, options=opts)
    result = {"page": page.as_uri(), "queries": {}, "console": []}
    failed = False
    try:
        driver.set_page_load_timeout(60)
        driver.get(page.as_uri())
        result["index_loaded"] = driver.execute_script(
            "return !!(window.SIMCLR_SEARCH && window.SIMCLR_SEARCH.docs && window.SIMCLR_SEARCH.docs.length)"
        )
        box = driver.find_element(By.ID, "search")
        for q in queries:
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(Keys.DELETE)
            box.send_keys(q)
            items = []
            deadline = time.time() + 20
            while time.time() < deadline:
                # The page marks the list with the query it answers.
                done = driver.find_element(By.ID, "results").get_attribute("data-query") == q
                items = driver.find_elements(By.CSS_SELECTOR, "#results li.result a")
                if done and items:
                    break
                time.sleep(0.1)
            if driver.find_element(By.ID, "results").get_attribute("data-query") != q:
                items = []
            status = driver.find_element(By.ID, "search-status").text
            titles = [i.text for i in items[:10]]
            result["queries"][q] = {"results": len(items), "status": status, "first": titles}
            if not items:
                failed = True
        for entry in driver.get_log("browser"):
            if entry.get("level") in ("SEVERE", "WARNING"):
                result["console"].append(entry)
                if entry.get("level") == "SEVERE":
                    failed = True
        if not result["index_loaded"]:
            failed = True
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
