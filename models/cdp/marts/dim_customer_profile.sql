-- One row per person across CRM, marketing, web and tills.
with r as (
    select p.profile_id, r.*
    from {{ ref('cdp_identity_records') }} as r
    join {{ ref('cdp_record_profiles') }} as p using (record_key)
),
-- The CRM's name first, then a lead's.
names as (
    select profile_id, name,
        row_number() over (
            partition by profile_id
            order by case source when 'crm_customers' then 0 else 1 end, record_key
        ) as n
    from r where name is not null
),
-- The email (phone) seen most often; the CRM's wins a tie, then the first.
emails as (
    select profile_id, email,
        row_number() over (
            partition by profile_id
            order by min(case source when 'crm_customers' then 0 else 1 end), count(*) desc, email
        ) as n
    from r where email is not null
    group by profile_id, email
),
phones as (
    select profile_id, phone,
        row_number() over (
            partition by profile_id
            order by min(case source when 'crm_customers' then 0 else 1 end), count(*) desc, phone
        ) as n
    from r where phone is not null
    group by profile_id, phone
),
-- The latest lead's consent is the person's.
consent as (
    select profile_id, marketing_consent,
        row_number() over (partition by profile_id order by seen_at desc, record_key desc) as n
    from r where source = 'marketing_leads'
),
facts as (
    select
        profile_id,
        min(seen_at) as first_seen,
        max(seen_at) as last_seen,
        count(*) as records,
        bool_or(source = 'crm_customers') as in_crm,
        bool_or(source = 'marketing_leads') as in_marketing,
        bool_or(source = 'web_events') as in_web,
        bool_or(source = 'pos_tickets') as in_pos,
        count(*) filter (where source = 'web_events') as web_events,
        count(*) filter (where source = 'pos_tickets') as tickets,
        coalesce(sum(amount), 0) as lifetime_value
    from r
    group by profile_id
)
select
    f.profile_id,
    nm.name,
    em.email as primary_email,
    ph.phone as primary_phone,
    f.first_seen,
    f.last_seen,
    concat_ws(',',
        case when f.in_crm then 'crm' end,
        case when f.in_marketing then 'marketing' end,
        case when f.in_pos then 'pos' end,
        case when f.in_web then 'web' end) as channels,
    f.in_crm or f.in_marketing or f.in_pos or em.email is not null as is_known,
    f.records,
    f.web_events,
    f.tickets,
    round(f.lifetime_value, 2) as lifetime_value,
    coalesce(c.marketing_consent, false) as marketing_consent
from facts as f
left join names as nm on nm.profile_id = f.profile_id and nm.n = 1
left join emails as em on em.profile_id = f.profile_id and em.n = 1
left join phones as ph on ph.profile_id = f.profile_id and ph.n = 1
left join consent as c on c.profile_id = f.profile_id and c.n = 1
order by f.profile_id
