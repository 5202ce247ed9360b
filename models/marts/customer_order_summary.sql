-- Every customer with their valid orders and spend (order headers; 0 when
-- none).
select
    c.customer_id,
    c.customer_name,
    count(o.order_id)                  as total_orders,
    coalesce(sum(o.total_amount), 0.0) as total_spent
from {{ ref('dim_customers') }} as c
left join {{ ref('fct_orders') }} as o on o.customer_id = c.customer_id
group by c.customer_id, c.customer_name
order by c.customer_id
