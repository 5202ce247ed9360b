-- Till tickets: a loyalty card (till customer id), an email or a phone.
select
    cast(ticket_id as bigint) as ticket_id,
    cast(till_customer_id as bigint) as till_customer_id,
    {{ cdp_email('email') }} as email,
    {{ cdp_phone('phone') }} as phone,
    cast(sold_at as timestamp) as sold_at,
    cast(product_id as bigint) as product_id,
    cast(amount as double) as amount
from {{ source('cdp', 'pos_tickets') }}
