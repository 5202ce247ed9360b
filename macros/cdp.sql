{#- Identity resolution helpers of the customer data platform (models/cdp). -#}

{#- A valid email, trimmed and lower case; NULL when it is not an email. -#}
{% macro cdp_email(column) -%}
case
    when regexp_like(lower(trim({{ column }})), '^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$')
    then lower(trim({{ column }}))
end
{%- endmacro %}

{#- A phone in E.164 (+<country><number>): `+34 612 345 678`, `0034...`,
    `(+34) ...`; nine national digits take the default country. NULL when
    it cannot be one. -#}
{% macro cdp_phone(column) -%}
{%- set digits = "regexp_replace(" ~ column ~ ", '[^0-9]', '', 'g')" -%}
case
    when regexp_like(trim({{ column }}), '^\(?\+') then '+' || {{ digits }}
    when {{ digits }} like '00%' then '+' || substr({{ digits }}, 3)
    when length({{ digits }}) = 9 then '+{{ var("cdp_country_code", "34") }}' || {{ digits }}
end
{%- endmacro %}

{#- Connected components by min-label propagation: `nodes` has a column
    `node`, `edges` columns `src` and `dst` (either direction). Each round
    moves labels one edge further; a singular test proves the last round
    changed nothing. `start`, when given, holds the labels (`node`,
    `label`) of earlier rounds to go on from. -#}
{% macro cdp_components(nodes, edges, rounds, start=none) -%}
links as (
    select src, dst from {{ edges }}
    union all
    select dst as src, src as dst from {{ edges }}
    union all
    select node as src, node as dst from {{ nodes }}
),
labels_0 as (
    {%- if start %}
    select node, label from {{ start }}
    {%- else %}
    select node, node as label from {{ nodes }}
    {%- endif %}
),
{%- for i in range(1, rounds + 1) %}
labels_{{ i }} as (
    select l.src as node, min(p.label) as label
    from links as l
    join labels_{{ i - 1 }} as p on p.node = l.dst
    group by l.src
){{ "," if not loop.last }}
{%- endfor %}
{%- endmacro %}
