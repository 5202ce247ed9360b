-- One row per valid line of a valid order.
--
-- Incremental like fct_orders: the lines of every order with a line that is
-- new, different or gone since the published table are replaced
-- (delete+insert by order_id; an order without lines now is deleted), so
-- late lines, corrected orders and returns land as in a full build.
{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy='delete+insert',
    delete_flag='_deleted',
    on_schema_change='fail'
) }}
with lines as (
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
)
{% if is_incremental() %}
{{ changed_rows('lines', 'order_id', 'order_item_id',
    ['order_id', 'customer_id', 'order_date', 'product_id', 'quantity', 'unit_price', 'line_amount'], this) }}
{% else %}
select * from lines
{% endif %}
order by order_item_id, order_id, customer_id, order_date, product_id, quantity, unit_price
