"""Real-browser test of the Results tab's Import: the export CSV downloaded from one dashboard is imported
twice into a second dashboard served on a fresh LOCALBENCH_HOME — the first import adds every run with its
id and machine, the second adds nothing — and a foreign file is rejected with its reason."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from playwright.sync_api import expect

from bench.results.store import ResultStore
from tests.bench.test_scorecard import XEON
from tests.conftest import ROOT, served_app
from tests.dashboard.test_benchmarks_browser import stored

pytestmark = pytest.mark.browser


@pytest.fixture
def fresh_app(tmp_path):
    """A second real app, served on its own empty LOCALBENCH_HOME."""
    home = tmp_path / "fresh-home"
    with served_app(tmp_path / "fresh-app.log", "serve", env={"LOCALBENCH_HOME": str(home)}) as url:
        yield url, home


def import_file(page, path) -> str:
    """Upload `path` into the Import control (as a user would, after clearing the last file), press Import, and
    return the status line."""
    before = page.locator("#results-import-status").inner_text().strip()
    field = page.locator("#results-import-file")
    # The tab's content mounts after the tab is clicked: wait until the control shows either its file input or a
    # file from the last import (Clear), or an empty, not yet mounted control reads as "a file is shown".
    field.locator("input[type=file], button[aria-label=Clear]").first.wait_for(state="attached")
    if field.locator("input[type=file]").count() == 0:  # a file from the last import is still shown: clear it
        field.hover()  # Gradio shows the file's Clear button on hover
        field.locator("button[aria-label=Clear]").click()
        expect(field.get_by_text(path.name)).to_have_count(0)  # cleared, not only its input mounted
        field.locator("input[type=file]").wait_for(state="attached")
        page.wait_for_timeout(300)  # the upload area re-renders after Clear; a file set mid-render is lost
    field.locator("input[type=file]").set_input_files(str(path))
    field.get_by_text(path.name).first.wait_for()
    page.locator("#results-import").click()
    page.wait_for_function(
        "(before) => { const t = (document.querySelector('#results-import-status')?.innerText || '').trim();"
        " return /^(imported|⚠️)/.test(t) && t !== before; }",  # not while the timer of a pending event shows
        arg=before,
    )
    return page.locator("#results-import-status").inner_text().strip()


def test_export_from_one_dashboard_import_twice_into_another(page, browser, fresh_app, localbench_home, tmp_path):
    store = ResultStore(localbench_home / "results.db")
    settings = {"engine": "llamacpp", "model": "import-model"}
    ids = [
        store.save_run("speed", [stored(avg_ts=v, samples_ts=[v - 1, v, v + 1])], settings=settings, hardware=XEON)
        for v in (80.0, 90.0)
    ]
    page.get_by_role("tab", name="Results").click()
    page.locator("#results-refresh").click()
    page.wait_for_function(f"() => document.querySelector('#results-runs')?.innerText?.includes('{ids[1]}')")
    page.wait_for_timeout(2000)  # the download files land just after the table
    with page.expect_download() as info:
        page.locator("#results-export").click()
    export = tmp_path / "localbench-results-export.csv"
    info.value.save_as(export)
    exported = pd.read_csv(export)
    n_runs = exported["run_id"].nunique()
    assert set(ids) <= set(exported["run_id"]) and n_runs == len(store.runs())

    url, home = fresh_app
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    other = context.new_page()
    other.set_default_timeout(60_000)
    try:
        other.goto(url)
        other.wait_for_selector("gradio-app", state="attached")
        other.get_by_role("tab", name="Results").click()
        first = import_file(other, export)
        assert first == f"imported {n_runs} runs, skipped 0 duplicates, rejected 0 rows", first
        other.wait_for_function(f"() => document.querySelector('#results-runs')?.innerText?.includes('{ids[0]}')")
        assert "Intel Xeon, 8 GiB RAM" in other.locator("#results-runs").inner_text()
        second = import_file(other, export)
        assert second == f"imported 0 runs, skipped {n_runs} duplicates, rejected 0 rows", second
        fresh = ResultStore(home / "results.db")
        assert sorted(r["run_id"] for r in fresh.runs()) == sorted(set(exported["run_id"]))
        assert fresh.hardware()[ids[0]] == store.hardware()[ids[0]]

        foreign = tmp_path / "foreign.json"
        foreign.write_text('{"schema": "someone-else/1", "runs": []}')
        rejected = import_file(other, foreign)
        assert re.match(
            r"imported 0 runs, skipped 0 duplicates, rejected 1 rows: foreign.json: not a localbench", rejected
        )
        assert len(fresh.runs()) == n_runs
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        other.screenshot(path=str(ROOT / "test-artifacts" / "results_import_fresh_home.png"), full_page=True)
    finally:
        context.close()
