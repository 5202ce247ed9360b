"""Project-supplied strings written as HTML or script (the fixture
tests/fixtures/projects/hostile/: descriptions, meta, a column name, test
names, an exposure's label and `javascript:` URL, compiled SQL, and
failing rows whose values are markup) are shown as text by the docs site
and the governance report, in the real browser (Debian's Chromium through
Playwright): after every page no injected script ran (`window.__pwned`
stays unset, no dialog opened), no element carries an `on...` handler or
a `javascript:` link, and the strings appear literally on the page."""

import shutil
import subprocess

import pytest

from conftest import ROOT, WH

FIXTURE = ROOT / "tests" / "fixtures" / "projects" / "hostile"

# What the page must not have: a script's mark, handlers, script links,
# and elements the project's strings would have created.
INJECTED = """() => ({
  pwned: window.__pwned === undefined ? null : String(window.__pwned),
  handlers: [...document.querySelectorAll('*')]
    .filter(e => [...e.attributes].some(a => a.name.toLowerCase().startsWith('on')))
    .map(e => e.outerHTML.slice(0, 120)),
  script_links: [...document.querySelectorAll('[href], [src]')]
    .filter(e => /^\\s*javascript:/i.test(e.getAttribute('href') || e.getAttribute('src')))
    .map(e => e.outerHTML.slice(0, 120)),
  injected: [...document.querySelectorAll('img, iframe, main script, svg:not(#graph)')]
    .map(e => e.outerHTML.slice(0, 120)),
})"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    project = tmp_path_factory.mktemp("hostile") / "p"
    shutil.copytree(FIXTURE, project)
    build = subprocess.run([WH, "build"], cwd=project, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    for command in (["docs", "generate"], ["report"]):
        out = subprocess.run([WH, *command], cwd=project, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    return project


def open_page(browser, url):
    page = browser.new_page()
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page, dialogs, errors


def assert_inert(page, dialogs, errors, where):
    page.wait_for_timeout(200)  # an injected onerror fires after the image fails
    found = page.evaluate(INJECTED)
    assert found == {"pwned": None, "handlers": [], "script_links": [], "injected": []}, (where, found)
    assert dialogs == [] and errors == [], (where, dialogs, errors)


def test_the_docs_site_shows_every_project_string_as_text(built, browser):
    site = (built / "target" / "docs" / "index.html").as_uri()
    pages = {
        "#model/people": [
            "<script>window.__pwned='description'</script>",
            "<img src=x onerror=\"window.__pwned='owner'\">",
            "\"><svg onload=\"window.__pwned='steward'\">",
            "<iframe src=\"javascript:top.__pwned='column'\"></iframe>",
            "<img src=x onerror=\"window.__pwned='classification'\">",
            "<b onclick=x>label</b>",
            "<img src=x onerror=window.__pwned=1>",
            "-- </pre><img src=x onerror=\"window.__pwned='sql'\">",
        ],
        "#source/raw.people": [
            "<img src=x onerror=\"window.__pwned='source table'\">",
            "<svg onload=\"window.__pwned='source column'\"></svg>",
        ],
        "#exposure/board": [
            "<img src=x onerror=\"window.__pwned='label'\">",
            "<script>window.__pwned='exposure'</script>",
            "<img src=x onerror=\"window.__pwned='exposure owner'\">",
            "javascript:window.__pwned='url'",
        ],
        "#graph": ["<b onclick=x>label</b>", "<img src=x onerror=\"window.__pwned='label'\">"],
        "#graph/people.name": ["people.name"],
    }
    for hash_, texts in pages.items():
        page, dialogs, errors = open_page(browser, site + hash_)
        page.wait_for_selector("main h1")
        text = page.inner_text("main")
        for expected in texts:
            assert expected in text, (hash_, expected, text)
        # Every link and column of the page clicked: still nothing runs.
        for col in page.query_selector_all("#graph text.col")[:10]:
            col.click()
        assert_inert(page, dialogs, errors, hash_)
        page.close()


def test_the_governance_report_shows_every_project_string_and_failing_row_as_text(built, browser):
    page, dialogs, errors = open_page(browser, (built / "target" / "governance_report.html").as_uri())
    text = page.inner_text("body")
    for expected in [
        "Owner: <img src=x onerror=\"window.__pwned='owner'\">",
        "<img src=x onerror=window.__pwned=1>",
        # The failing rows' own values, sampled from the data.
        "<img src=x onerror=\"window.__pwned='row'\">",
        "<script>window.__pwned='row script'</script>",
    ]:
        assert expected in text, (expected, text)
    assert_inert(page, dialogs, errors, "report")


def test_a_test_name_with_dots_and_slashes_keeps_its_sample_in_the_run_folder(built):
    failures = built / "warehouse" / "_wh" / "failures"
    samples = sorted(p.relative_to(failures).parts for p in failures.rglob("*.parquet"))
    assert len(samples) == 2, samples
    assert all(len(parts) == 2 for parts in samples), samples  # <run id>/<file>
    names = sorted(parts[1] for parts in samples)
    assert names[0].startswith("_.._.._escaped-") and names[1].startswith("_img_src_x_onerror_window.__pwned_1_-"), names
    assert not (built / "escaped.parquet").exists() and not (built.parent / "escaped.parquet").exists()
