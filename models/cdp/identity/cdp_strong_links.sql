-- Links that always hold: a shared valid email (a login too), a shared
-- till customer id, a shared cookie or device. Each record links to the
-- first record (by key) holding the same value.
with r as (select * from {{ ref('cdp_identity_records') }}),
values_ as (
    select record_key, 'email' as rule, email as value from r where email is not null
    union all
    select record_key, 'till_id', till_id from r where till_id is not null
    union all
    select record_key, 'crm_id', crm_id from r where crm_id is not null
    union all
    select record_key, 'cookie', cookie_id from r where cookie_id is not null
    union all
    select record_key, 'device', device_id from r where device_id is not null
)
select
    record_key as src,
    min(record_key) over (partition by rule, value) as dst,
    rule
from values_
order by src, rule
