-- One row per valid order. total_amount is the header (what the customer
-- paid); the line measures count valid lines only and are 0 without any.
with lines as (
    select
        order_id,
        count(*)                   as item_lines,
        sum(quantity)              as units,
        sum(quantity * unit_price) as items_amount
    from {{ ref('stg_order_items') }}
    group by order_id
)
select
    o.order_id,
    o.customer_id,
    o.order_date,
    o.total_amount,
    coalesce(l.item_lines, 0)             as item_lines,
    coalesce(l.units, 0)                  as units,
    coalesce(l.items_amount, 0.0)         as items_amount
from {{ ref('stg_orders') }} as o
left join lines as l on l.order_id = o.order_id
order by o.order_id, o.customer_id, o.order_date, o.total_amount
