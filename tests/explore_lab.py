"""The run explorer in JupyterLab, driven through the browser: after notebook 06 has run in Lab (its last cell
displays the explorer), filter the painting table, open a painting from it, then that painting's query, and check
each view shows the data layer's numbers. Called by tests/test_report_jupyterlab.py on the notebook it ran, so
the explorer is tested in the real notebook without starting a second JupyterLab."""
from __future__ import annotations

from pathlib import Path

from artcap_lib.config import RunPaths, load_profile
from artcap_lib.report import explore
from report_rundir import SIZES


def click_through_explorer(browser, run_root: Path, wait) -> None:
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.keys import Keys

    cfg = load_profile("demo", {"run_dir": str(run_root / "run"), "figures_dir": str(run_root / "figures"), **SIZES})
    paths = RunPaths.for_profile(cfg)
    view = explore.load(cfg, paths)
    assert (paths.figures / explore.PAGE_NAME).is_file()          # the cell also wrote the static page

    def text(css):             # one script: no stale element when the kernel redraws a view meanwhile
        return browser.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''",
                                      css)

    def rows():
        return browser.find_elements(By.CSS_SELECTOR, ".artcap-explore-rows select option")

    def row_ids():
        # read in one script, as the kernel may redraw the options between two element reads; a row's label starts
        # with the painting's id (ipywidgets numbers the options)
        return browser.execute_script("return [...document.querySelectorAll('.artcap-explore-rows select option')]"
                                      ".map((o) => o.textContent.trim().split(/\\s+/)[0])")

    def click_row(art_id):
        try:
            rows()[row_ids().index(art_id)].click()
            return True
        except StaleElementReferenceException:        # redrawn in between: try again
            return False
    try:
        wait.until(lambda d: len(row_ids()) == len(view.table))
    except Exception:         # say what the notebook's last output shows instead of a bare timeout
        outputs = browser.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-OutputArea")
        raise AssertionError(f"no explorer table of {len(view.table)} rows; the last cell shows: "
                             f"{outputs[-1].get_attribute('innerHTML')[:3000] if outputs else '(nothing)'}") from None
    # the filter: the rows pandas' query keeps (report_rundir: blip-synthetic ranks every other painting last)
    expression = "delta_blip_synthetic > 2"
    field = browser.find_element(By.CSS_SELECTOR, ".artcap-explore-filter input")
    field.send_keys(expression, Keys.ENTER)
    kept = list(view.filter(expression).index)
    wait.until(lambda d: row_ids() == kept and len(kept) < len(view.table))
    assert f"{len(kept)} of {len(view.table)} paintings" in text(".artcap-explore")

    # a row opens its painting: both captions, the metric scores, its ranks
    painting = kept[0]
    wait.until(lambda d: click_row(painting))
    wait.until(lambda d: view.human[painting] in text(".artcap-explore-painting"))
    shown = browser.find_element(By.CSS_SELECTOR, ".artcap-explore-painting")
    assert view.captions[cfg.captioning.name][painting] in shown.text
    assert shown.find_elements(By.CSS_SELECTOR, "img")
    ranks = {tuple(c.text for c in r.find_elements(By.TAG_NAME, "td")[:2]): r.find_elements(By.TAG_NAME, "td")[2].text
             for r in shown.find_elements(By.CSS_SELECTOR, "table.ranks tr")[1:]}
    assert ranks[("blip", "human")] == "1" and ranks[("blip", "synthetic")] == str(len(view.table))
    assert f"{view.table.loc[painting, 'coco_cider']:.3f}" in shown.text

    # ... and its query: every model x variant's top k, the relevant painting marked where it is listed
    browser.find_element(By.CSS_SELECTOR, ".artcap-explore-open-query button, button.artcap-explore-open-query").click()
    wait.until(lambda d: view.queries["artpedia"][painting] in text(".artcap-explore-query"))
    query = browser.find_element(By.CSS_SELECTOR, ".artcap-explore-query")
    columns = query.find_elements(By.CSS_SELECTOR, ".column")
    assert len(columns) == sum(len(v) for v in view.variants.values())
    human = columns[[c.find_element(By.TAG_NAME, "b").text for c in columns].index("blip · human")]
    assert "relevant" in human.find_elements(By.CSS_SELECTOR, ".hit")[0].get_attribute("class")
    assert len(query.find_elements(By.CSS_SELECTOR, ".hit.relevant")) == sum(
        view.top[key][painting][:5].count(painting) for key in view.top)
