-- Marketing form leads with their identifiers normalised and consent.
select
    cast(lead_id as bigint) as lead_id,
    trim(name) as lead_name,
    {{ cdp_email('email') }} as email,
    {{ cdp_phone('phone') }} as phone,
    cast(created_at as timestamp) as created_at,
    campaign,
    coalesce(marketing_consent, false) as marketing_consent
from {{ source('cdp', 'marketing_leads') }}
