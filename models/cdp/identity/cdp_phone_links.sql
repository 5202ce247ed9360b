-- A shared phone links only where no two different valid emails conflict:
-- the components holding the phone carry at most one distinct email
-- between them (a household shares a phone, not an email).
with r as (select * from {{ ref('cdp_identity_records') }}),
c as (select * from {{ ref('cdp_strong_components') }}),
holders as (
    select r.phone, c.component
    from r join c using (record_key)
    where r.phone is not null
    group by r.phone, c.component
),
component_emails as (
    select c.component, r.email
    from r join c using (record_key)
    where r.email is not null
    group by c.component, r.email
),
phones as (
    select h.phone, count(distinct e.email) as emails, count(distinct h.component) as components
    from holders as h left join component_emails as e on e.component = h.component
    group by h.phone
)
select
    h.component as src,
    min(h.component) over (partition by h.phone) as dst,
    h.phone,
    p.emails <= 1 as linked
from holders as h join phones as p using (phone)
where p.components > 1
order by phone, src
