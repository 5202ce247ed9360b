-- Units sold per category, over valid order lines.
select
    p.category,
    sum(i.quantity) as units_sold
from {{ ref('stg_order_items') }} as i
join {{ ref('dim_products') }} as p on p.product_id = i.product_id
group by p.category
order by units_sold desc, p.category
