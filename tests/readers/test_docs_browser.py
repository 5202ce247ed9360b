"""Opens the generated docs site in a real browser (Debian's Chromium,
driven by Playwright): it loads without console errors, the lineage graph
shows every model, and selecting customer_order_summary.total_spent
highlights its path back to the raw orders.total_amount. The screenshot is
kept in target/test-artifacts/."""

import subprocess

import pytest

from conftest import GOLDEN_RAW, ROOT, WH, copy_example

ARTIFACTS = ROOT / "target" / "test-artifacts"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    project = tmp_path_factory.mktemp("docs")
    copy_example(project)
    raw = GOLDEN_RAW
    vars_ = f"{{raw_root: '{raw}'}}"
    subprocess.run([WH, "build", "--quiet", "--vars", vars_], cwd=project, check=True)
    subprocess.run([WH, "docs", "generate", "--quiet", "--vars", vars_], cwd=project, check=True)
    return project / "target" / "docs" / "index.html"


def test_graph_loads_and_traces_total_spent_to_the_raw_orders(site, browser):
    page = browser.new_page(viewport={"width": 1700, "height": 1100})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.as_uri() + "#graph")
    page.wait_for_selector("#graph")
    models = page.eval_on_selector_all("g.node[data-kind=model]", "els => els.map(e => e.dataset.node)")
    assert len(models) == 34 and "customer_order_summary" in models and "stg_orders" in models
    assert page.locator("g.node[data-kind=exposure]").count() == 1

    page.click('text.col[data-col="customer_order_summary.total_spent"]')
    highlighted = set(page.eval_on_selector_all("text.col.hl", "els => els.map(e => e.dataset.col)"))
    for col in [
        "customer_order_summary.total_spent",
        "fct_orders.total_amount",
        "stg_orders.total_amount",
        "shop.orders.total_amount",
    ]:
        assert col in highlighted, highlighted
    assert "dim_customers.email" not in highlighted
    nodes = set(page.eval_on_selector_all("g.node.hl", "els => els.map(e => e.dataset.node)"))
    assert {"shop.orders", "stg_orders", "fct_orders", "customer_order_summary"} <= nodes
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs-lineage.png"), full_page=True)
    assert errors == []


def test_model_page_shows_governance_columns_and_assertions(site, browser):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.as_uri() + "#model/fct_orders")
    text = page.inner_text("main")
    assert "analytics-engineering" in text
    assert "order_total_matches_lines" in text and "warn" in text
    assert "total_amount" in text and "double" in text
    recon = page.locator("tr", has_text="order_total_matches_lines")
    assert recon.locator("td.warn").count() == 1 and recon.locator("span.warn").count() == 1
    rows = page.eval_on_selector_all("main tr", "trs => trs.map(t => t.innerText)")
    assert "rows\t3" in rows, rows
    page.fill("#search", "mart_customer")
    links = page.eval_on_selector_all("#list a", "els => els.map(e => e.textContent)")
    assert links == ["mart_customer_rfm"]
    assert errors == []
