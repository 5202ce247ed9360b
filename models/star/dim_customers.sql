-- One row per customer. Staging removed exact duplicates; should one id
-- still carry two versions, the earliest created_at (then name, email) wins.
with ranked as (
    select
        customer_id, customer_name, email, created_at,
        row_number() over (
            partition by customer_id
            order by created_at, customer_name, email
        ) as version_rank
    from {{ ref('stg_customers') }}
)
select customer_id, customer_name, email, created_at
from ranked
where version_rank = 1
order by customer_id
