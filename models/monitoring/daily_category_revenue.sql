-- Revenue, orders and units per order day and product category: what the
-- sales monitors watch (see _monitoring.yml and docs/src/monitoring.md).
select
    i.order_date,
    p.category,
    -- Summed in decimal: exact, so the same in any order (a double sum
    -- over parallel partitions differs in its last bits run to run).
    cast(sum(cast(i.line_amount as decimal(18, 2))) as double) as revenue,
    count(distinct i.order_id) as orders,
    sum(i.quantity) as units
from {{ ref('fct_order_items') }} as i
join {{ ref('dim_products') }} as p on p.product_id = i.product_id
group by i.order_date, p.category
order by order_date, category
