-- Products without a single valid order line.
select p.product_id, p.product_name, p.category
from {{ ref('dim_products') }} as p
left join (
    select distinct product_id from {{ ref('stg_order_items') }}
) as sold on sold.product_id = p.product_id
where sold.product_id is null
order by p.product_id
