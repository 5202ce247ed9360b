-- Every source record with the identifiers it carries, one row each.
select * from (
select
    'crm:' || cast(crm_id as varchar) as record_key, 'crm_customers' as source, cast(crm_id as varchar) as record_id,
    email, phone, cast(crm_id as varchar) as crm_id, cast(null as varchar) as till_id,
    cast(null as varchar) as cookie_id, cast(null as varchar) as device_id,
    customer_name as name, cast(null as timestamp) as seen_at, cast(null as double) as amount,
    cast(null as boolean) as marketing_consent, cast(null as varchar) as campaign
from {{ ref('stg_cdp_crm_customers') }}
union all
select
    'lead:' || cast(lead_id as varchar), 'marketing_leads', cast(lead_id as varchar),
    email, phone, null, null, null, null,
    lead_name, created_at, null, marketing_consent, campaign
from {{ ref('stg_cdp_marketing_leads') }}
union all
select
    'web:' || cast(event_id as varchar), 'web_events', cast(event_id as varchar),
    login_email, null, null, null, cookie_id, device_id,
    null, event_at, null, null, null
from {{ ref('stg_cdp_web_events') }}
union all
select
    'pos:' || cast(ticket_id as varchar), 'pos_tickets', cast(ticket_id as varchar),
    email, phone, null, cast(till_customer_id as varchar), null, null,
    null, sold_at, amount, null, null
from {{ ref('stg_cdp_pos_tickets') }}
) as records
order by record_key
