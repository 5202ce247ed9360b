-- How much of the revenue the top 20% of buyers bring. Buyers are ranked
-- by spend (order headers) descending, then customer_id ascending; the top
-- are the first ceil(0.2 * buyers).
with spend as (
    select customer_id, sum(total_amount) as spend
    from {{ ref('fct_orders') }}
    group by customer_id
),
ranked as (
    select
        customer_id,
        spend,
        row_number() over (order by spend desc, customer_id asc) as spend_rank,
        count(*) over ()                                         as buyers
    from spend
)
select
    count(*)                                                              as buyers,
    cast(ceil(0.2 * count(*)) as bigint)                                  as top_customers,
    coalesce(sum(case when spend_rank <= ceil(0.2 * buyers) then spend end), 0.0) as top_revenue,
    coalesce(sum(spend), 0.0)                                             as total_revenue,
    sum(case when spend_rank <= ceil(0.2 * buyers) then spend end) / nullif(sum(spend), 0.0) as top_share
from ranked
