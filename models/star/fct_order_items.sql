-- One row per valid line of a valid order.
select
    i.order_item_id,
    i.order_id,
    o.customer_id,
    o.order_date,
    i.product_id,
    i.quantity,
    i.unit_price,
    i.quantity * i.unit_price as line_amount
from {{ ref('stg_order_items') }} as i
join {{ ref('stg_orders') }} as o on o.order_id = i.order_id
order by i.order_item_id, i.order_id, o.customer_id, o.order_date, i.product_id, i.quantity, i.unit_price
