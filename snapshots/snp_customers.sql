{% snapshot snp_customers %}
-- Every version of each customer's name and email (SCD type 2): a new
-- version when either changes, valid from the build that saw it.
{{ config(
    unique_key='customer_id',
    strategy='check',
    check_cols=['customer_name', 'email'],
    hard_deletes='invalidate'
) }}
select customer_id, customer_name, email, created_at
from {{ ref('dim_customers') }}
where customer_id is not null
{% endsnapshot %}
