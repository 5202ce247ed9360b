-- Components of the strong links: records of one person by email, ids,
-- cookies and devices. The rounds go on from the labels of the first half
-- (cdp_strong_labels).
{%- set rounds = var('cdp_rounds', 8) %}
with nodes as (select record_key as node from {{ ref('cdp_identity_records') }}),
edges as (select src, dst from {{ ref('cdp_strong_links') }} where src <> dst),
{{ cdp_components('nodes', 'edges', rounds - rounds // 2, start=ref('cdp_strong_labels')) }}
select node as record_key, label as component from labels_{{ rounds - rounds // 2 }}
order by record_key
