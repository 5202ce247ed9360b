-- Customers whose RFM segment changed in this build, with the segment they
-- left and the one they entered: the feed a CRM reads after each build to
-- tell a customer about a new segment the day it happens. Empty when the
-- build changed no segment (or did not run the snapshot). A buyer's first
-- segment is not a change.
with versions as (
    select * from {{ ref('snp_customer_rfm') }}
)
select
    n.customer_id,
    n.customer_name,
    p.rfm_segment    as old_segment,
    n.rfm_segment    as new_segment,
    n.as_of_date,
    n.dbt_valid_from as changed_at
from versions as n
join versions as p
    on p.customer_id = n.customer_id
   and p.dbt_valid_to = n.dbt_valid_from
where n.dbt_valid_from = cast('{{ run_started_at }}' as timestamp)
order by n.customer_id
