-- RFM scores per customer with at least one valid order (SPEC §2).
-- as-of date: var as_of_date, else the day after the latest order date, so
-- a rebuild of the same data gives the same result.
{%- set as_of = var('as_of_date', none) %}
with as_of as (
{%- if as_of %}
    select cast('{{ as_of }}' as date) as as_of_date
{%- else %}
    select cast(max(order_date) + interval '1 day' as date) as as_of_date
    from {{ ref('fct_orders') }}
{%- endif %}
),
per_customer as (
    select
        customer_id,
        max(order_date)           as last_order_date,
        count(distinct order_id)  as frequency,
        round(sum(total_amount), 2) as monetary
    from {{ ref('fct_orders') }}
    group by customer_id
),
scored as (
    select
        p.customer_id,
        c.customer_name,
        p.last_order_date,
        cast(a.as_of_date - p.last_order_date as bigint) as recency_days,
        p.frequency,
        p.monetary,
        a.as_of_date
    from per_customer as p
    cross join as_of as a
    left join {{ ref('dim_customers') }} as c on c.customer_id = p.customer_id
),
ranked as (
    select
        *,
        cast(ntile(4) over (order by recency_days desc, customer_id asc) as bigint) as r_score,
        cast(ntile(4) over (order by frequency asc, customer_id asc) as bigint)     as f_score,
        cast(ntile(4) over (order by monetary asc, customer_id asc) as bigint)      as m_score
    from scored
)
select
    customer_id,
    customer_name,
    last_order_date,
    recency_days,
    frequency,
    monetary,
    r_score,
    f_score,
    m_score,
    concat(cast(r_score as varchar), cast(f_score as varchar), cast(m_score as varchar)) as rfm_cell,
    case
        when r_score = 4 and f_score = 4 and m_score = 4 then '01 - Champions'
        when r_score = 1 and f_score = 1 and m_score = 1 then '05 - Lost Customers'
        when f_score >= 3 and m_score >= 3 and r_score >= 2 then '03 - Loyal Customers'
        when r_score <= 2 then '04 - At Risk'
        else '02 - Promising'
    end as rfm_segment,
    as_of_date
from ranked
order by customer_id
