-- Who marketing may contact, with what they showed interest in. Tagged
-- `marketing`: profiles without marketing consent are removed when it is
-- written, whatever this query returns.
with campaigns as (
    select p.profile_id, string_agg(distinct r.campaign, ',' order by r.campaign) as campaigns
    from {{ ref('cdp_identity_records') }} as r
    join {{ ref('cdp_record_profiles') }} as p using (record_key)
    where r.campaign is not null
    group by p.profile_id
)
select
    d.profile_id,
    d.name,
    d.primary_email,
    c.campaigns,
    d.lifetime_value,
    d.last_seen
from {{ ref('dim_customer_profile') }} as d
left join campaigns as c using (profile_id)
where d.primary_email is not null
order by d.profile_id
