-- The customer 360 for BI: one row per known person. Public: its personal
-- columns are masked when written (see classification in wh_project.yml).
select
    profile_id,
    name,
    primary_email,
    primary_phone,
    channels,
    first_seen,
    last_seen,
    tickets,
    lifetime_value,
    web_events,
    marketing_consent
from {{ ref('dim_customer_profile') }}
where is_known
order by profile_id
