-- One row per valid order. total_amount is the header (what the customer
-- paid); the line measures count valid lines only and are 0 without any.
--
-- Incremental: the raw extracts carry no load time, so a later build finds
-- what changed by comparing with the published table ({{ this }}): every
-- order with a row that is new (a new or late-arriving order), different
-- (a corrected header, changed lines) or gone is rebuilt. delete+insert
-- replaces that order's published rows with its rows now, and an order gone
-- from the source comes as one row with _deleted true, which deletes it.
-- The rest stays as published: the table always equals a full build
-- (changed_rows in macros/incremental.sql).
{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy='delete+insert',
    delete_flag='_deleted',
    on_schema_change='fail'
) }}
with lines as (
    select
        order_id,
        count(*)                   as item_lines,
        sum(quantity)              as units,
        sum(quantity * unit_price) as items_amount
    from {{ ref('stg_order_items') }}
    group by order_id
),
orders as (
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
)
{% if is_incremental() %}
{{ changed_rows('orders', 'order_id', 'order_id',
    ['customer_id', 'order_date', 'total_amount', 'item_lines', 'units', 'items_amount'], this) }}
{% else %}
select * from orders
{% endif %}
order by order_id, customer_id, order_date, total_amount
