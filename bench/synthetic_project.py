"""Writes a synthetic wh project of N models in a layered DAG, to measure
how compile, ls and docs scale with the number of models.

usage: synthetic_project.py N OUT_DIR

The shape of a large dbt shop's project, as issue 23 describes it:
- layers of about sqrt(N) models; layer 0 reads one of ten sources, each
  read through dbt-duckdb's `meta: {external_location: ...}`;
- every later model refs 1 to 3 models of earlier layers (mostly the one
  before), joined on id;
- every model has two tests in its folder's schema file (`not_null` and
  `unique` on id) and a description;
- every 10th model filters by a `var()` with a default.
Deterministic: the same N gives the same files.
"""

import pathlib
import random
import sys

SOURCES = 10


def sources_yml():
    tables = "".join(f"      - name: t{i}\n" for i in range(SOURCES))
    return (
        "version: 2\nsources:\n  - name: raw\n"
        "    meta:\n      external_location: \"data/{name}.csv\"\n"
        f"    tables:\n{tables}"
    )


def model_sql(i, layer, parents, rng):
    if layer == 0:
        sql = f"select id, v + 1 as v, w from {{{{ source('raw', 't{i % SOURCES}') }}}}"
    else:
        aliases = "abc"[: len(parents)]
        cols = " + ".join(f"{a}.v" for a in aliases)
        sql = f"select a.id, {cols} as v, coalesce({', '.join(f'{a}.w' for a in aliases)}) as w\n"
        sql += f"from {{{{ ref('{parents[0]}') }}}} as a"
        for a, p in zip(aliases[1:], parents[1:]):
            sql += f"\njoin {{{{ ref('{p}') }}}} as {a} on a.id = {a}.id"
    if i % 10 == 0:
        sql += f"\nwhere {'a.' if layer else ''}w < {{{{ var('max_w_{i % 3}', 7) }}}}"
    return sql + "\n"


def parents_of(layer, width, names, rng):
    prev = names[(layer - 1) * width : layer * width]
    earlier = names[: (layer - 1) * width]
    k = rng.choice((1, 2, 2, 3))
    picked = rng.sample(prev, min(k, len(prev)))
    if earlier and len(picked) > 1 and rng.random() < 0.3:
        picked[-1] = rng.choice(earlier)
    return list(dict.fromkeys(picked))


def schema_entry(name, i, layer):
    return (
        f"  - name: {name}\n"
        f"    description: Synthetic model {i} in layer {layer}.\n"
        "    columns:\n"
        "      - name: id\n"
        "        tests: [not_null, unique]\n"
    )


def main():
    n, out = int(sys.argv[1]), pathlib.Path(sys.argv[2])
    rng = random.Random(7)
    width = max(10, int(n ** 0.5))
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    (out / "wh_project.yml").write_text(
        "name: synthetic\nmodels:\n  synthetic:\n    +materialized: table\n"
    )
    (out / "sources.yml").write_text(sources_yml())
    rows = "".join(f"{i},{i * 2},{i % 7}\n" for i in range(100))
    for t in range(SOURCES):
        (out / "data" / f"t{t}.csv").write_text("id,v,w\n" + rows)
    names, schemas = [], {}
    for i in range(n):
        layer, name = i // width, f"m{i:06d}"
        parents = parents_of(layer, width, names, rng) if layer else []
        folder = out / "models" / f"layer{layer:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.sql").write_text(model_sql(i, layer, parents, rng))
        schemas.setdefault(folder, ["version: 2\nmodels:\n"]).append(schema_entry(name, i, layer))
        names.append(name)
    for folder, parts in schemas.items():
        (folder / "schema.yml").write_text("".join(parts))


if __name__ == "__main__":
    main()
