-- The next four weeks of revenue per product category, day by day, with a
-- 95% band: MSTL takes out the weekday pattern, AutoETS follows the level
-- and trend of the rest. The SQL gives the history; `forecast` in the
-- config names its columns (docs/src/monitoring.md, Forecasts). Each build
-- also appends its forecast to the forecast history, which the
-- `revenue_below_forecast` monitor compares the actual days with.
{{ config(forecast={
    'metric': 'sum(revenue)',
    'timestamp_column': 'order_date',
    'dimensions': ['category'],
    'horizon': 28,
    'level': 0.95,
    'method': 'mstl',
    'training_period': 182,
}) }}
select order_date, category, revenue
from {{ ref('daily_category_revenue') }}
