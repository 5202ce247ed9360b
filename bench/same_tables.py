"""Compares every Parquet table of two warehouses row by row, in DuckDB:
the same number of rows and no row of one missing from the other (EXCEPT
ALL both ways), with DOUBLE columns rounded to 4 decimals (the data has cents), since summation
order may change their last bits. Exits 1 at the first difference.

usage: same_tables.py WAREHOUSE_A WAREHOUSE_B
"""

import pathlib
import sys

import duckdb


def main():
    a, b = (pathlib.Path(p) for p in sys.argv[1:3])
    files = sorted(p.relative_to(a) for p in a.rglob("*.parquet") if "_wh" not in p.parts)
    con = duckdb.connect()
    for rel in files:
        columns = con.execute(f"describe select * from read_parquet('{a / rel}')").fetchall()
        select = ", ".join(
            f'round("{name}", 4)' if kind in ("DOUBLE", "FLOAT") else f'"{name}"' for name, kind, *_ in columns
        )
        left, right = (f"select {select} from read_parquet('{w / rel}')" for w in (a, b))
        count_a, count_b = (con.execute(f"select count(*) from ({q})").fetchone()[0] for q in (left, right))
        missing = con.execute(f"select count(*) from (({left}) except all ({right}))").fetchone()[0]
        extra = con.execute(f"select count(*) from (({right}) except all ({left}))").fetchone()[0]
        if count_a != count_b or missing or extra:
            sys.exit(f"{rel}: {count_a} vs {count_b} rows, {missing} only in {a}, {extra} only in {b}")
    print(f"same rows in all {len(files)} tables of {a} and {b}")


if __name__ == "__main__":
    main()
