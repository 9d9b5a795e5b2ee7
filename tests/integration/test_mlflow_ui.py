"""A finished study in a real `mlflow server`, seen through headless Chromium: runs grouped by a param.

Also checks that `report --out` logs the report to one report run under the study's run, and how the HTML report
looks. Screenshots go to
$TORNADOSTUDY_SCREENSHOT_DIR when set (docs/img was made that way), else to the test's folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli, start_workers, wait_all, write_sim_spec
from tornadostudy.study.handle import StudyHandle
from tornadostudy.tracking import Tracker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 90  # how long to wait for the UI to show something (a page load, not a speed limit)


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless Chromium needs the distribution's chromium and chromium-driver packages")
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (the [test] extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1600,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _run_study(folder: Path, env: dict) -> None:
    spec = write_sim_spec(
        folder, search='batch_size = [128, 256]\nnum_gpus = [1, 2]\nepochs = [2, 3]\naugmentation = ["pre", "live"]'
    )
    created = run_cli("create", str(spec), env=env)
    assert created.returncode == 0, created.stderr
    procs = start_workers("sim", 1, env, gpus=1) + start_workers("sim", 1, env, gpus=2)
    results = wait_all(procs)
    assert all(code == 0 for code, _, _ in results), [err[-800:] for _, _, err in results]


def _shot(driver, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("TORNADOSTUDY_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    driver.save_screenshot(str(path))
    return path


def test_runs_are_grouped_by_a_param_in_the_mlflow_ui(browser, mlflow_server, study_env, tmp_path):
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    folder, env = study_env
    env = {**env, "MLFLOW_TRACKING_URI": mlflow_server, "CUDA_VISIBLE_DEVICES": "0,1"}
    _run_study(folder, env)

    # The report (tables, figures, HTML) lands in one 'report' run under the study's run; a report made again
    # replaces it, so one set of report artifacts is left.
    for _ in range(2):
        report = run_cli("report", "sim", "--format", "html", "--out", str(folder / "report"), env=env)
        assert report.returncode == 0, report.stderr
    handle = StudyHandle.open("sim", env["TORNADOSTUDY_STORAGE"])
    tracker = Tracker(mlflow_server)
    (report_run,) = tracker.client.search_runs(
        [handle.experiment_id], filter_string="tags.`tornadostudy.role` = 'report'"
    )
    assert report_run.data.tags["mlflow.parentRunId"] == handle.parent_run_id
    logged = tracker.list_artifacts(report_run.info.run_id, "report")
    assert "report/report.html" in logged and "report/figures" in logged
    figures = tracker.list_artifacts(report_run.info.run_id, "report/figures")
    assert len(figures) >= 4 and len(figures) == len(list((folder / "report" / "figures").glob("*.png")))

    # The HTML report itself, as a browser shows it: the summary (objectives, skill scores) first.
    browser.get((folder / "report" / "report.html").resolve().as_uri())
    body = browser.find_element("tag name", "body").text
    assert body.index("Objectives of the study") < body.index("Summary: configurations by")
    assert body.index("Summary: configurations by") < body.index("(paper Tables")
    _shot(browser, tmp_path, "report-html.png")

    # The UI re-renders as data arrives: an element found a moment ago may be gone; look again.
    wait = WebDriverWait(
        browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException, ElementClickInterceptedException)
    )

    def click(find) -> None:
        """Click what ``find(driver)`` returns, once it exists and takes the click."""

        def attempt(d):
            element = find(d)
            if element is None:
                return False
            element.click()
            return True

        wait.until(attempt)

    def first(elements):
        return elements[0] if elements else None

    browser.get(f"{mlflow_server}/#/experiments/{handle.experiment_id}/runs")
    wait.until(lambda d: "18 matching runs" in d.find_element(By.TAG_NAME, "body").text)  # 16 trials, study, report
    for close in browser.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):  # side panels
        try:
            if close.is_displayed():
                close.click()
        except (StaleElementReferenceException, ElementClickInterceptedException):
            pass  # a panel that went away by itself
    _shot(browser, tmp_path, "mlflow-runs.png")

    click(lambda d: first([b for b in d.find_elements(By.TAG_NAME, "button") if b.text == "Group by"]))
    # The menu lists tags first, then params: take the param.
    click(
        lambda d: (
            [i for i in d.find_elements(By.CSS_SELECTOR, "[role='menuitemcheckbox']") if i.text == "batch_size"]
            or [None]
        )[-1]
    )
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)

    def groups(d) -> dict[str, str]:
        rows = [r.text.split("\n") for r in d.find_elements(By.CSS_SELECTOR, "[role='row']")]
        return {r[1]: r[2] for r in rows if len(r) > 2 and r[1].startswith("Group: ")}

    found = wait.until(lambda d: groups(d) if {"Group: 128", "Group: 256"} <= set(groups(d)) else None)
    assert found["Group: 128"] == "8" and found["Group: 256"] == "8", found
    shot = _shot(browser, tmp_path, "mlflow-group-by-batch-size.png")
    assert shot.stat().st_size > 10_000

    # The chart view draws the per-epoch accuracy curves of the groups.
    chart = wait.until(lambda d: first(d.find_elements(By.CSS_SELECTOR, "input[type='radio'][value='CHART']")))
    browser.execute_script("arguments[0].click()", chart)
    wait.until(lambda d: "test_accuracy" in d.find_element(By.TAG_NAME, "body").text)
    _shot(browser, tmp_path, "mlflow-charts-by-batch-size.png")
