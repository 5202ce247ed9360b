-- Each customer's cumulative spend, order by order (by date, then id).
select
    o.customer_id,
    c.customer_name,
    o.order_id,
    o.order_date,
    o.total_amount,
    sum(o.total_amount) over (
        partition by o.customer_id
        order by o.order_date, o.order_id
        rows between unbounded preceding and current row
    ) as running_total
from {{ ref('fct_orders') }} as o
left join {{ ref('dim_customers') }} as c on c.customer_id = o.customer_id
order by o.customer_id, o.order_date, o.order_id
