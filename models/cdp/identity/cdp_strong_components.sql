-- Components of the strong links: records of one person by email, ids,
-- cookies and devices.
with nodes as (select record_key as node from {{ ref('cdp_identity_records') }}),
edges as (select src, dst from {{ ref('cdp_strong_links') }} where src <> dst),
{{ cdp_components('nodes', 'edges', var('cdp_rounds', 8)) }}
select node as record_key, label as component from labels_{{ var('cdp_rounds', 8) }}
order by record_key
