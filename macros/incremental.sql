{#
  The rows an incremental model sends to `delete+insert` with
  delete_flag='_deleted' when its source carries no load time: for every
  key with a row that is new, different or gone since the published version
  `this`, all of that key's rows now, or, for a key that is gone, one row
  with _deleted true (which deletes it). `current` names the model's rows
  now (a CTE). Every other key stays as published, so the table always
  equals a full build.
#}
{% macro changed_rows(current, key, this) %}
select c.{{ key }}, r.* exclude ({{ key }}, _deleted), coalesce(r._deleted, true) as _deleted
from (
    select {{ key }} from (select * from {{ current }} except select * from {{ this }}) as added
    union
    select {{ key }} from (select * from {{ this }} except select * from {{ current }}) as removed
) as c
left join (select *, false as _deleted from {{ current }}) as r on r.{{ key }} is not distinct from c.{{ key }}
{% endmacro %}
