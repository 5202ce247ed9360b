-- The first half of the strong rounds, kept as a table that the second
-- half (cdp_strong_components) goes on from: eight rounds in one query
-- nest 50 operators deep, past the 45 or so that Ballista's scheduler
-- decodes (see "Running on a Ballista cluster" in the README); the labels
-- are the same either way.
with nodes as (select record_key as node from {{ ref('cdp_identity_records') }}),
edges as (select src, dst from {{ ref('cdp_strong_links') }} where src <> dst),
{{ cdp_components('nodes', 'edges', var('cdp_rounds', 8) // 2) }}
select node, label from labels_{{ var('cdp_rounds', 8) // 2 }}
order by node
