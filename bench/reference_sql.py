"""An independent DuckDB implementation of SPEC §2, model by model, written
from the spec (not from wh's SQL). The reader tests compare wh's warehouse
with it; the benchmark runs it as the baseline. Raw tables are the views
raw_customers, raw_products, raw_orders, raw_order_items."""

MODELS = {
    "stg_customers": "staging",
    "stg_products": "staging",
    "stg_orders": "staging",
    "stg_order_items": "staging",
    "dim_customers": "star",
    "dim_products": "star",
    "dim_date": "star",
    "fct_orders": "star",
    "fct_order_items": "star",
    "mart_customer_rfm": "marts",
    "customer_order_summary": "marts",
    "units_by_category": "analyses",
    "customer_running_spend": "analyses",
    "products_never_sold": "analyses",
    "pareto_top20": "analyses",
}

REFERENCE = {
    "stg_customers": """
        select distinct cast(id as bigint) customer_id, trim(name) customer_name,
               lower(trim(email)) email, cast(created_at as date) created_at
        from raw_customers""",
    "stg_products": """
        select distinct cast(id as bigint) product_id, trim(name) product_name, trim(category) category
        from raw_products""",
    "stg_orders": """
        select distinct cast(id as bigint) order_id, cast(customer_id as bigint) customer_id,
               cast(order_date as date) order_date, cast(total_amount as double) total_amount
        from raw_orders where customer_id is not null""",
    "stg_order_items": """
        select distinct * from (
            select cast(id as bigint) order_item_id, cast(order_id as bigint) order_id,
                   cast(product_id as bigint) product_id, cast(quantity as bigint) quantity,
                   cast(unit_price as double) unit_price
            from raw_order_items) where quantity > 0""",
    "dim_customers": "select * from stg_customers",
    "dim_products": "select * from stg_products",
    "dim_date": """
        select cast(strftime(d, '%Y%m%d') as int) date_key, cast(d as date) date_day,
               year(d) as year, quarter(d) as quarter, month(d) as month, day(d) day_of_month,
               isodow(d) iso_day_of_week, isodow(d) >= 6 is_weekend
        from (select unnest(generate_series(min(order_date), max(order_date), interval 1 day)) d
              from stg_orders)""",
    "fct_orders": """
        select o.*, coalesce(l.n, 0) item_lines, coalesce(l.u, 0) units, coalesce(l.a, 0) items_amount
        from stg_orders o left join (
            select order_id, count(*) n, sum(quantity) u, sum(quantity * unit_price) a
            from stg_order_items group by order_id) l using (order_id)""",
    "fct_order_items": """
        select i.order_item_id, i.order_id, o.customer_id, o.order_date, i.product_id, i.quantity,
               i.unit_price, i.quantity * i.unit_price line_amount
        from stg_order_items i join stg_orders o using (order_id)""",
    "mart_customer_rfm": """
        with a as (select max(order_date) + 1 as as_of from fct_orders),
        p as (select customer_id, max(order_date) last_order_date, count(distinct order_id) frequency,
                     round(sum(total_amount), 2) monetary from fct_orders group by customer_id),
        s as (select p.*, c.customer_name, (a.as_of - p.last_order_date) recency_days
              from p cross join a left join dim_customers c using (customer_id)),
        r as (select *, ntile(4) over (order by recency_days desc, customer_id) r_score,
                        ntile(4) over (order by frequency, customer_id) f_score,
                        ntile(4) over (order by monetary, customer_id) m_score from s)
        select customer_id, customer_name, last_order_date, recency_days, frequency, monetary,
               r_score, f_score, m_score, concat(r_score, f_score, m_score) rfm_cell,
               case when r_score = 4 and f_score = 4 and m_score = 4 then '01 - Champions'
                    when r_score = 1 and f_score = 1 and m_score = 1 then '05 - Lost Customers'
                    when f_score >= 3 and m_score >= 3 and r_score >= 2 then '03 - Loyal Customers'
                    when r_score <= 2 then '04 - At Risk'
                    else '02 - Promising' end rfm_segment
        from r""",
    "customer_order_summary": """
        select c.customer_id, c.customer_name, count(o.order_id) total_orders,
               coalesce(sum(o.total_amount), 0) total_spent
        from dim_customers c left join fct_orders o using (customer_id)
        group by all""",
    "units_by_category": """
        select p.category, sum(i.quantity) units_sold
        from stg_order_items i join dim_products p using (product_id) group by all""",
    "customer_running_spend": """
        select o.customer_id, c.customer_name, o.order_id, o.order_date, o.total_amount,
               sum(o.total_amount) over (partition by o.customer_id order by o.order_date, o.order_id
                                         rows between unbounded preceding and current row) running_total
        from fct_orders o left join dim_customers c using (customer_id)""",
    "products_never_sold": """
        select * from dim_products
        where product_id not in (select product_id from stg_order_items)""",
    "pareto_top20": """
        with s as (select customer_id, sum(total_amount) spend from fct_orders group by all),
        r as (select *, row_number() over (order by spend desc, customer_id) rk from s),
        n as (select count(*) buyers, cast(ceil(0.2 * count(*)) as bigint) top from s)
        select n.buyers, n.top top_customers,
               (select sum(spend) from r where rk <= n.top) top_revenue,
               (select sum(spend) from s) total_revenue,
               (select sum(spend) from r where rk <= n.top) / (select sum(spend) from s) top_share
        from n""",
}
