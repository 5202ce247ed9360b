-- The profile of every record: components of the strong links, joined
-- where a phone links them; profile_id is stable while its first record is.
with components as (select distinct component as node from {{ ref('cdp_strong_components') }}),
edges as (select src, dst from {{ ref('cdp_phone_links') }} where linked and src <> dst),
{{ cdp_components('components', 'edges', var('cdp_phone_rounds', 4)) }}
select
    c.record_key,
    'P' || left(encode(sha256(l.label), 'hex'), 16) as profile_id
from {{ ref('cdp_strong_components') }} as c
join labels_{{ var('cdp_phone_rounds', 4) }} as l on l.node = c.component
order by c.record_key
