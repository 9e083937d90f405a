"""The static explorer page in a real browser: headless Chromium opens the page `artcap explore` wrote for a small
run of two captioners (tests/report_rundir.py), filters and sorts the painting table, opens a painting and its
query, and checks the numbers are the data layer's. Needs Debian's chromium and chromedriver and selenium (skipped
with the reason otherwise, as tests/test_report_jupyterlab.py)."""
import json
import re
import shutil
from pathlib import Path

import pytest

from artcap_lib.cli import main as artcap
from artcap_lib.config import RunPaths, load_profile
from artcap_lib.report import explore, explore_html
from report_rundir import SECOND, make_run_dir

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--window-size=1400,1000")

pytestmark = pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                                reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, "
                                       "/usr/bin/chromedriver): scripts/setup.sh installs them as root")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explore")
    overrides = make_run_dir(tmp / "demo", second=True)
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    out = tmp / "run.html"
    assert artcap(["explore", "--profile", "demo", *sets, "--out", str(out)]) == 0
    cfg = load_profile("demo", overrides)
    return {"file": out, "view": explore.load(cfg, RunPaths.for_profile(cfg)), "sets": sets}


@pytest.fixture(scope="module")
def browser(page):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = page["file"].parent / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.get(page["file"].as_uri())
    yield driver
    driver.quit()


def _rows(browser):
    from selenium.webdriver.common.by import By
    return [r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "#paintings tbody tr")]


def _cells(browser, element, table):
    """The text of a table's body cells, row by row, read in one round trip to the browser."""
    return browser.execute_script(
        "return [...arguments[0].querySelectorAll(arguments[1] + ' tr')].slice(1)"
        ".map((r) => [...r.cells].map((c) => c.textContent))", element, table)


def test_page_is_self_contained(page):
    text = page["file"].read_text(encoding="utf-8")
    # no server, no network: nothing is fetched, the thumbnails are inline
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert text.count("data:image/jpeg;base64,") == 1             # the one template every thumbnail goes through
    data = json.loads(re.search(r'<script type="application/json" id="run-data">(.*?)</script>', text, re.S)
                      .group(1))
    assert set(data["thumbs"]) == set(page["view"].images) and len(data["thumbs"]) == 6


def test_table_filters_and_sorts(page, browser):
    from selenium.webdriver.common.by import By
    view = page["view"]
    assert sorted(_rows(browser)) == sorted(view.table.index)
    # the filter is the explorer's expression language: the page keeps what pandas' query keeps
    expression = "delta_blip_synthetic > 2 and bleu4 < 1"
    browser.find_element(By.ID, "filter").send_keys(expression)
    assert sorted(_rows(browser)) == sorted(view.filter(expression).index)
    assert 0 < len(_rows(browser)) < len(view.table)
    assert browser.find_element(By.ID, "count").text.startswith(f"{len(view.filter(expression))} of 6")
    browser.find_element(By.ID, "filter").send_keys(" and nonsense")
    assert "no column nonsense" in browser.find_element(By.ID, "filter-error").text
    browser.find_element(By.ID, "filter").clear()
    browser.find_element(By.ID, "filter").send_keys(" ")                # an empty filter keeps every row
    assert len(_rows(browser)) == 6
    header = browser.find_element(By.CSS_SELECTOR, "th[data-col='bleu4']")
    header.click()
    header = browser.find_element(By.CSS_SELECTOR, "th[data-col='bleu4']")
    header.click()                                                       # twice: descending
    assert _rows(browser) == list(view.table["bleu4"].sort_values(ascending=False).index)


def test_painting_and_query_views(page, browser):
    from selenium.webdriver.common.by import By
    view = page["view"]
    painting = view.table.index[1]          # blip-synthetic ranks it last, human first (report_rundir's scores)
    browser.find_element(By.ID, "tab-table").click()
    browser.find_element(By.CSS_SELECTOR, f"#paintings tr[data-id='{painting}']").click()
    shown = browser.find_element(By.ID, "view-painting")
    assert shown.is_displayed()
    assert view.human[painting] in shown.text
    assert view.captions[SECOND][painting] in shown.text
    assert shown.find_elements(By.CSS_SELECTOR, "img")                    # its thumbnail
    rows = {tuple(cells[:2]): cells[2] for cells in _cells(browser, shown, "table.ranks")}
    assert rows[("blip", "human")] == "1" and rows[("blip", "synthetic")] == "6"
    assert rows[("blip", "synthetic")] == str(int(view.table.loc[painting, "rank_blip_synthetic"]))
    metrics = {tuple(cells[:3]): cells[3] for cells in _cells(browser, shown, "table.metrics")}
    assert metrics[(SECOND, "coco", "coco_cider")] == f"{view.table.loc[painting, f'coco_cider__{SECOND}']:.3f}"

    shown.find_element(By.CSS_SELECTOR, "button.open-query").click()
    query = browser.find_element(By.ID, "view-query")
    assert query.is_displayed() and view.queries["artpedia"][painting] in query.text
    columns = query.find_elements(By.CSS_SELECTOR, ".column")
    assert len(columns) == sum(len(v) for v in view.variants.values())   # every model x variant side by side
    for column in columns:
        key = (column.get_attribute("data-model"), column.get_attribute("data-variant"), "artpedia")
        hits = [h.get_attribute("data-id") for h in column.find_elements(By.CSS_SELECTOR, ".hit")]
        assert hits == view.top[key][painting]
        marked = [h.get_attribute("data-id") for h in column.find_elements(By.CSS_SELECTOR, ".hit.relevant")]
        assert marked == [painting]              # 6 paintings, top 10: the relevant one is always listed
    human = query.find_element(By.CSS_SELECTOR, ".column[data-model='blip'][data-variant='human']")
    assert human.find_elements(By.CSS_SELECTOR, ".hit")[0].get_attribute("class") == "hit relevant"
    # a hit opens its painting
    human.find_elements(By.CSS_SELECTOR, ".hit")[1].click()
    assert browser.find_element(By.ID, "view-painting").is_displayed()


def test_a_page_of_part_of_a_run_names_what_it_does_not_hold(page, browser, tmp_path, monkeypatch):
    """A run above the page's limit: the page holds that many paintings and their queries; a painting a query
    ranks that the page does not hold is listed by id and title, marked as not on this page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    view = page["view"]
    monkeypatch.setattr(explore_html, "EXTREMES", 0)         # the seeded sample alone
    out = tmp_path / "part.html"
    assert artcap(["explore", "--profile", "demo", *page["sets"], "--paintings", "2", "--out", str(out)]) == 0
    browser.get(out.as_uri())
    try:
        held = _rows(browser)
        assert len(held) == 2 and set(held) <= set(view.table.index)
        assert "This page holds 2 of the run's 6 paintings" in browser.find_element(By.ID, "notes").text
        browser.find_element(By.ID, "tab-query").click()
        options = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "query-id")).options]
        assert sorted(options) == sorted(held)                # each held painting's own query, no other
        column = browser.find_element(By.CSS_SELECTOR, ".column[data-model='blip'][data-variant='baseline']")
        hits = column.find_elements(By.CSS_SELECTOR, ".hit")
        assert [h.get_attribute("data-id") for h in hits] == view.top[("blip", "baseline", "artpedia")][options[0]]
        for hit in hits:
            art_id = hit.get_attribute("data-id")
            assert view.table.loc[art_id, "title"] in hit.text
            assert ("not on this page" in hit.text) == (art_id not in held)
            assert bool(hit.find_elements(By.CSS_SELECTOR, "img")) == (art_id in held)
    finally:
        browser.get(page["file"].as_uri())
