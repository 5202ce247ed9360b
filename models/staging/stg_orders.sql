-- Valid orders: typed, exact duplicates removed, orders without a customer
-- dropped.
with typed as (
    select
        cast(id as bigint)              as order_id,
        cast(customer_id as bigint)     as customer_id,
        cast(order_date as date)        as order_date,
        cast(total_amount as double)    as total_amount
    from {{ source('shop', 'orders') }}
)
select distinct order_id, customer_id, order_date, total_amount
from typed
where customer_id is not null
order by order_id, customer_id, order_date, total_amount
