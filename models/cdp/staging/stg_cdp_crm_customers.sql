-- CRM customers with their identifiers normalised.
select
    cast(crm_id as bigint) as crm_id,
    trim(name) as customer_name,
    {{ cdp_email('email') }} as email,
    {{ cdp_phone('phone') }} as phone,
    trim(address) as address
from {{ source('cdp', 'crm_customers') }}
