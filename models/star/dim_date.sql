-- One row per calendar day from the first to the last valid order date.
with bounds as (
    select min(order_date) as first_day, max(order_date) as last_day
    from {{ ref('stg_orders') }}
),
days as (
    select unnest(generate_series(first_day, last_day, interval '1 day')) as date_day
    from bounds
    where first_day is not null
)
select
    cast(date_part('year', date_day) * 10000
         + date_part('month', date_day) * 100
         + date_part('day', date_day) as int)              as date_key,
    cast(date_day as date)                                 as date_day,
    cast(date_part('year', date_day) as int)               as year,
    cast(date_part('quarter', date_day) as int)            as quarter,
    cast(date_part('month', date_day) as int)              as month,
    cast(date_part('day', date_day) as int)                as day_of_month,
    cast((date_part('dow', date_day) + 6) % 7 + 1 as int)  as iso_day_of_week,
    date_part('dow', date_day) in (0, 6)                   as is_weekend
from days
order by date_key
