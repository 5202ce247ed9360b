-- Products, typed, text trimmed, exact duplicates removed.
select distinct
    cast(id as bigint)             as product_id,
    {{ clean_text('name') }}       as product_name,
    {{ clean_text('category') }}   as category
from {{ source('shop', 'products') }}
order by product_id, product_name, category
