-- One row per product (first version by name, then category, if an id
-- repeats with different attributes).
with ranked as (
    select
        product_id, product_name, category,
        row_number() over (
            partition by product_id
            order by product_name, category
        ) as version_rank
    from {{ ref('stg_products') }}
)
select product_id, product_name, category
from ranked
where version_rank = 1
order by product_id
