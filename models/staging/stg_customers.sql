-- Customers, typed and cleaned: names trimmed, emails trimmed and lower
-- case; exact duplicates (after cleaning) removed.
select distinct
    cast(id as bigint)           as customer_id,
    {{ clean_text('name') }}     as customer_name,
    {{ clean_email('email') }}   as email,
    cast(created_at as date)     as created_at
from {{ source('shop', 'customers') }}
order by customer_id, customer_name, email, created_at
