"""Opens a report page in headless Chromium and measures what it shows.

    tools/browser/page PAGE.html [--count CSS ...] [--screenshot OUT.png --scroll-to CSS]

Prints one JSON object: per --count selector the number of matching
elements, whether each one has a non-empty rendered box, the browser
console's errors and warnings, and with --screenshot the path of a PNG of
the window after scrolling the --scroll-to element into view. Exit status 1
when the console has an error, 2 on usage errors. Browser and driver are
Debian's (/usr/bin/chromium, /usr/bin/chromedriver); nothing is downloaded.
"""

import json
import pathlib
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from check_search import FLAGS, which


def parse(argv):
    page, counts, shot, scroll = None, [], None, None
    it = iter(argv)
    for a in it:
        if a == "--count":
            counts.append(next(it))
        elif a == "--screenshot":
            shot = next(it)
        elif a == "--scroll-to":
            scroll = next(it)
        elif a.startswith("-") or page is not None:
            raise ValueError(a)
        else:
            page = a
    if page is None:
        raise ValueError("no page")
    return page, counts, shot, scroll


def main(argv):
    try:
        page, counts, shot, scroll = parse(argv)
    except (ValueError, StopIteration) as e:
        print(f"check_page: bad arguments ({e})\n{__doc__}", file=sys.stderr)
        return 2
    page = pathlib.Path(page).resolve()
    profile = tempfile.mkdtemp(prefix="simclr-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = which("chromium", "chromium-browser")
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=which("chromedriver"))
    driver = webdriver.Chrome(service=service, options=opts)
    result = {"page": page.as_uri(), "counts": {}, "visible": {}, "console": []}
    failed = False
    try:
        driver.set_page_load_timeout(60)
        driver.get(page.as_uri())
        for sel in counts:
            els = driver.find_elements(By.CSS_SELECTOR, sel)
            result["counts"][sel] = len(els)
            result["visible"][sel] = sum(
                1 for e in els if e.size.get("width", 0) > 0 and e.size.get("height", 0) > 0
            )
        if shot:
            if scroll:
                el = driver.find_element(By.CSS_SELECTOR, scroll)
                driver.execute_script("arguments[0].scrollIntoView(true); window.scrollBy(0, -60);", el)
            driver.save_screenshot(shot)
            result["screenshot"] = str(pathlib.Path(shot).resolve())
        for entry in driver.get_log("browser"):
            if entry.get("level") in ("SEVERE", "WARNING"):
                result["console"].append(entry)
                if entry.get("level") == "SEVERE":
                    failed = True
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
