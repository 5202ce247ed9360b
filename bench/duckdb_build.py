"""Builds the example warehouse with DuckDB from wh's compiled SQL: the same
models, in the same dependency order, each materialized and written as
Parquet to the same paths. The baseline of bench/compare.sh.

usage: duckdb_build.py PROJECT_DIR RAW_DIR OUT_DIR
(PROJECT_DIR must hold target/manifest.json and target/compiled/ from
`wh compile`.)
"""

import json
import pathlib
import sys

import duckdb


def main():
    project, raw, out = (pathlib.Path(a) for a in sys.argv[1:4])
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    # Snapshots keep history across builds and have no one-shot SQL form:
    # they and what reads them are not part of the comparison.
    history = [k for k, v in manifest["nodes"].items() if v["resource_type"] == "snapshot"]
    while history:
        node = history.pop()
        history.extend(c for c in manifest["child_map"].get(node, []) if c not in history)
        manifest["nodes"].pop(node, None)
    # The customer data platform (tag cdp) is not in the SPEC: left out too.
    models = {
        k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model" and "cdp" not in v["tags"]
    }
    con = duckdb.connect()
    con.execute("create schema shop")
    for table in ["customers", "products", "orders", "order_items"]:
        con.execute(f"""create view shop."{table}" as select * from read_parquet('{raw / (table + '.parquet')}')""")
    done = set()
    while len(done) < len(models):
        for uid, node in sorted(models.items()):
            parents = [p for p in manifest["parent_map"][uid] if p in models]
            if uid in done or any(p not in done for p in parents):
                continue
            name = node["name"]
            sql = (project / "target" / "compiled" / node["original_file_path"]).read_text()
            con.execute(f'create table "{name}" as {sql}')
            dest = out / node["config"]["wh"]["output_path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"""copy "{name}" to '{dest}' (format parquet)""")
            done.add(uid)


if __name__ == "__main__":
    main()
