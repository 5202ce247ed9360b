{#
  The rows an incremental model sends to `delete+insert` with
  delete_flag='_deleted' when its source carries no load time. It compares
  the model's rows now (`current`, a CTE) with its published version
  (`this`), row by row on `row_key` over `columns`: for every `key` with a
  row that is new, different or gone, all of that key's rows now, or, for a
  key with no rows now, one row with _deleted true (which deletes it).
  Every other key stays as published, so the table always equals a full
  build. Call it right after the model's last CTE: it adds CTEs, then the
  final select.
#}
{% macro changed_rows(current, key, row_key, columns, this) %}
, wh_diff as (
    select n.{{ key }} as new_key, n.wh_present as new_present, o.{{ key }} as old_key, o.wh_present as old_present
    from (select *, true as wh_present from {{ current }}) as n
    full join (select *, true as wh_present from {{ this }}) as o on n.{{ row_key }} = o.{{ row_key }}
    where n.wh_present is null or o.wh_present is null
    {%- for c in columns %}
        or (n.{{ c }} is distinct from o.{{ c }})
    {%- endfor %}
),
wh_changed as (
    select new_key as {{ key }} from wh_diff where new_present
    union
    select old_key from wh_diff where old_present
)
select c.{{ key }}, r.* exclude ({{ key }}, _deleted), coalesce(r._deleted, true) as _deleted
from wh_changed as c
left join (select *, false as _deleted from {{ current }}) as r on r.{{ key }} is not distinct from c.{{ key }}
{% endmacro %}
