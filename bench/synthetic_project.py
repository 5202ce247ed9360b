"""Writes a synthetic wh project of N models in a layered DAG, to measure
how compile, ls and docs scale with the number of models.

usage: synthetic_project.py N OUT_DIR
Layer 0 reads a small CSV source; each later model joins two models of the
layer before it. Every model has columns (id, v, w) and a YAML description.
"""

import pathlib
import random
import sys


def main():
    n, out = int(sys.argv[1]), pathlib.Path(sys.argv[2])
    rng = random.Random(7)
    width = max(10, int(n ** 0.5))
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    (out / "wh_project.yml").write_text("name: synthetic\nmodels:\n  synthetic:\n    +materialized: table\n")
    (out / "sources.yml").write_text(
        "sources:\n  - name: raw\n    tables:\n      - {name: t, format: csv, location: data/t.csv}\n"
    )
    (out / "data" / "t.csv").write_text("id,v,w\n" + "".join(f"{i},{i * 2},{i % 7}\n" for i in range(100)))
    names, yml = [], ["version: 2", "models:"]
    for i in range(n):
        layer, name = i // width, f"m{i:05d}"
        if layer == 0:
            sql = "select id, v + 1 as v, w from {{ source('raw', 't') }}\n"
        else:
            prev = names[(layer - 1) * width : layer * width]
            a, b = rng.sample(prev, 2) if len(prev) > 1 else (prev[0], prev[0])
            sql = (
                f"select a.id, a.v + b.v as v, coalesce(a.w, b.w) as w\n"
                f"from {{{{ ref('{a}') }}}} as a\njoin {{{{ ref('{b}') }}}} as b on a.id = b.id\n"
            )
        folder = out / "models" / f"layer{layer:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.sql").write_text(sql)
        yml += [f"  - name: {name}", f"    description: Synthetic model {i} in layer {layer}."]
        names.append(name)
    (out / "models" / "schema.yml").write_text("\n".join(yml) + "\n")


if __name__ == "__main__":
    main()
