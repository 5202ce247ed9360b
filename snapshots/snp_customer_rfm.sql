{% snapshot snp_customer_rfm %}
-- Each buyer's RFM segment over time: a new version when the segment
-- changes. rfm_segment_changes reads it.
{{ config(
    unique_key='customer_id',
    strategy='check',
    check_cols=['rfm_segment']
) }}
select customer_id, customer_name, rfm_cell, rfm_segment, as_of_date
from {{ ref('mart_customer_rfm') }}
{% endsnapshot %}
