-- One row per calendar day from the first to the last valid order date.
with bounds as (
    select min(order_date) as first_day, max(order_date) as last_day
    from {{ ref('stg_orders') }}
),
digits as (
    select column1 as n from (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9))
),
-- Day offsets 0 .. 99,999 (273 years), from digits rather than
-- generate_series, which Ballista's executors do not have.
offsets as (
    select a.n + 10 * b.n + 100 * c.n + 1000 * d.n + 10000 * e.n as n
    from digits as a
    cross join digits as b
    cross join digits as c
    cross join digits as d
    cross join digits as e
),
days as (
    select first_day + cast(o.n as int) as date_day
    from bounds
    cross join offsets as o
    where first_day is not null and first_day + cast(o.n as int) <= last_day
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
