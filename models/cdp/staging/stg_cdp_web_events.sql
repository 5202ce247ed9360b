-- Web site events; the email is there when the visitor was logged in.
select
    cast(event_id as bigint) as event_id,
    cookie_id,
    device_id,
    {{ cdp_email('email') }} as login_email,
    event_type,
    page,
    cast(product_id as bigint) as product_id,
    cast(event_at as timestamp) as event_at
from {{ source('cdp', 'web_events') }}
