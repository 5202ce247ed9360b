-- Bridge: every identifier of every profile, where it was seen and the
-- rule that linked it.
with r as (
    select p.profile_id, r.*
    from {{ ref('cdp_identity_records') }} as r
    join {{ ref('cdp_record_profiles') }} as p using (record_key)
),
unlinked_phones as (
    select distinct phone from {{ ref('cdp_phone_links') }} where not linked
),
ids as (
    select profile_id, 'email' as identifier_type, email as identifier_value, source,
        case when source = 'web_events' then 'login' else 'email' end as rule
    from r where email is not null
    union all
    select r.profile_id, 'phone', r.phone, r.source,
        case when u.phone is null then 'phone' else 'phone_not_linked_conflicting_emails' end
    from r left join unlinked_phones as u on u.phone = r.phone
    where r.phone is not null
    union all
    select profile_id, 'crm_id', crm_id, source, 'crm_id' from r where crm_id is not null
    union all
    select profile_id, 'till_customer_id', till_id, source, 'till_id' from r where till_id is not null
    union all
    select profile_id, 'cookie_id', cookie_id, source, 'cookie' from r where cookie_id is not null
    union all
    select profile_id, 'device_id', device_id, source, 'device' from r where device_id is not null
)
select profile_id, identifier_type, identifier_value, source, rule, count(*) as records
from ids
group by profile_id, identifier_type, identifier_value, source, rule
order by profile_id, identifier_type, identifier_value, source, rule
