-- Every linking phone's components ended in one profile.
select p.phone
from {{ ref('cdp_phone_links') }} as p
join {{ ref('cdp_strong_components') }} as c on c.component = p.src
join {{ ref('cdp_record_profiles') }} as r on r.record_key = c.record_key
where p.linked
group by p.phone
having count(distinct r.profile_id) > 1
