-- Valid order lines: typed, exact duplicates removed, returns and empty
-- lines (quantity <= 0, or unknown) dropped.
with typed as (
    select
        cast(id as bigint)            as order_item_id,
        cast(order_id as bigint)      as order_id,
        cast(product_id as bigint)    as product_id,
        cast(quantity as bigint)      as quantity,
        cast(unit_price as double)    as unit_price
    from {{ source('shop', 'order_items') }}
)
select distinct order_item_id, order_id, product_id, quantity, unit_price
from typed
where quantity > 0
order by order_item_id, order_id, product_id, quantity, unit_price
