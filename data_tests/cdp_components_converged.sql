-- The component rounds converged: no strong link joins two components, and
-- no linking phone joins two profiles. Raise var cdp_rounds (or
-- cdp_phone_rounds) if this fails.
select l.src, l.dst, l.rule
from {{ ref('cdp_strong_links') }} as l
join {{ ref('cdp_strong_components') }} as a on a.record_key = l.src
join {{ ref('cdp_strong_components') }} as b on b.record_key = l.dst
where a.component <> b.component
