//! The customer data platform's raw sources: one population of people seen,
//! messily, by four systems, and the answer file that says who is who.
//!
//! Scale 1 is 10,000 people. Each person has a name, usually an email
//! (92%) and a phone (85%), at least one of the two; 3% share their phone
//! with the person before them (a household) but never an email, and the
//! records of household members always carry their email. They appear in:
//! - `crm_customers` (60%): crm id, name, email (95%), phone (80%),
//!   address; 2% of them have a second account (another crm id);
//! - `marketing_leads` (45%): one or two leads with email (90%) or phone,
//!   a campaign and consent flags (the latest lead's consent is the
//!   person's);
//! - `web_events` (50%): 3 to 15 events over 1 or 2 devices and up to 3
//!   cookies per device; people seen elsewhere log in (their email on a
//!   quarter of the events, at least once per device used); 10% of people are
//!   anonymous visitors seen only there, who never log in;
//! - `pos_tickets` (40%): tickets carrying a till customer id (loyalty
//!   card, 70% of them), an email or a phone, at least one of them; a
//!   card's first ticket also carries an email or phone (its registration).
//!
//! Emails vary in case and surrounding spaces, and 3% of records that
//! carry another identifier have an invalid email; phones come in five
//! formats (`+34 612 345 678`, `0034612345678`, `612-345-678`,
//! `(+34) 612 34 56 78`, `612345678`). `cdp_truth.parquet` gives the
//! person behind every record: (source, record_id, person_id).

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{write_table, DOMAINS, FIRST, LAST};

/// Row counts of the generated sources.
#[derive(Debug, Clone, Copy, Default)]
pub struct CdpCounts {
    pub people: usize,
    pub crm_customers: usize,
    pub marketing_leads: usize,
    pub web_events: usize,
    pub pos_tickets: usize,
}

struct Person {
    first: String,
    last: String,
    /// Canonical (lower case) email.
    email: Option<String>,
    /// Nine national digits.
    phone: Option<String>,
    /// Shares the phone with another person (a household): every record
    /// of theirs carries their email, so the data shows the conflict.
    shared_phone: bool,
    consent: bool,
}

/// A CRM row: crm id, name, email, phone, address.
type CrmRow = (i64, String, Option<String>, Option<String>, String);
/// A lead: lead id, name, email, phone, created at, campaign, consent.
type LeadRow = (i64, String, Option<String>, Option<String>, i64, String, bool);
/// A web event: event id, cookie, device, login email, type, page, product,
/// time.
type EventRow = (i64, String, String, Option<String>, String, String, Option<i64>, i64);
/// A ticket: ticket id, till customer id, email, phone, time, product, amount.
type TicketRow = (i64, Option<i64>, Option<String>, Option<String>, i64, i64, f64);

#[derive(Default)]
struct Tables {
    crm: Vec<CrmRow>,
    leads: Vec<LeadRow>,
    events: Vec<EventRow>,
    tickets: Vec<TicketRow>,
    /// Source, record id, person id.
    truth: Vec<(&'static str, String, i64)>,
}

const CAMPAIGNS: &[&str] = &["spring_sale", "newsletter", "black_friday", "loyalty", "webinar"];
const PAGES: &[&str] = &["/", "/search", "/product", "/cart", "/checkout", "/account"];
const EVENT_TYPES: &[&str] = &["page_view", "page_view", "page_view", "add_to_cart", "search", "purchase"];
const STREETS: &[&str] = &["Calle Mayor", "Gran Vía", "Avenida del Mar", "Calle Luna", "Paseo del Prado"];

/// 2024-01-01 00:00:00 UTC in microseconds.
const START: i64 = 1_704_067_200_000_000;
const DAY: i64 = 86_400_000_000;

/// Generates the four CDP sources and the answer file at `scale` into `out`.
pub fn generate(out: &Path, scale: f64, seed: u64) -> std::io::Result<CdpCounts> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xcd9);
    let n = ((10_000.0 * scale).round() as usize).max(10);
    let people = people(n, &mut rng);
    let mut g = Channels { t: Tables::default(), crm_id: 1000, lead_id: 1, event_id: 1, ticket_id: 1, till_id: 500 };
    for (p, person) in people.iter().enumerate() {
        let pid = p as i64 + 1;
        let anonymous = rng.random_bool(0.10);
        let mut in_crm = !anonymous && rng.random_bool(0.60);
        let in_leads = !anonymous && rng.random_bool(0.45);
        let in_web = anonymous || rng.random_bool(0.50);
        let in_pos = !anonymous && rng.random_bool(0.40);
        if !(anonymous || in_crm || in_leads || in_web || in_pos) {
            in_crm = true;
        }
        if in_crm {
            g.crm(person, pid, &mut rng);
        }
        if in_leads {
            g.leads(person, pid, &mut rng);
        }
        // A known person without an email cannot log in: no web trail.
        if in_web && (anonymous || person.email.is_some()) {
            g.web(person, pid, anonymous, &mut rng);
        }
        if in_pos {
            g.pos(person, pid, &mut rng);
        }
    }
    let t = g.t;
    write_tables(out, &t)?;
    Ok(CdpCounts {
        people: n,
        crm_customers: t.crm.len(),
        marketing_leads: t.leads.len(),
        web_events: t.events.len(),
        pos_tickets: t.tickets.len(),
    })
}

/// The people behind the records: names, one email and phone each (some
/// households share a phone), and marketing consent.
fn people(n: usize, rng: &mut ChaCha8Rng) -> Vec<Person> {
    let mut people: Vec<Person> = Vec::with_capacity(n);
    for i in 0..n {
        let first = FIRST[rng.random_range(0..FIRST.len())].to_string();
        let last = LAST[rng.random_range(0..LAST.len())].to_string();
        let household = i > 0 && rng.random_bool(0.03) && people[i - 1].phone.is_some();
        let phone = if household {
            people[i - 1].phone.clone()
        } else {
            rng.random_bool(0.85).then(|| format!("6{:08}", rng.random_range(0..100_000_000u32)))
        };
        // Everybody can be reached somehow: no email means a phone.
        let email = (household || phone.is_none() || rng.random_bool(0.92)).then(|| {
            let user = super::ascii(&format!("{}.{}{}", first, last, i)).to_lowercase();
            format!("{user}@{}", DOMAINS[rng.random_range(0..DOMAINS.len())])
        });
        if household {
            people[i - 1].shared_phone = true;
            if people[i - 1].email.is_none() {
                let user = super::ascii(&format!("{}.{}{}", people[i - 1].first, people[i - 1].last, i - 1));
                people[i - 1].email = Some(format!("{}@{}", user.to_lowercase(), DOMAINS[0]));
            }
        }
        people.push(Person { first, last, email, phone, shared_phone: household, consent: rng.random_bool(0.6) });
    }
    people
}

/// A person's name as one channel wrote it: as is, padded or upper case.
fn written_name(person: &Person, rng: &mut ChaCha8Rng) -> String {
    let n = format!("{} {}", person.first, person.last);
    match rng.random_range(0..4) {
        0 => format!("  {n} "),
        1 => n.to_uppercase(),
        _ => n,
    }
}

/// The four channels' records as they are generated, with their next ids.
struct Channels {
    t: Tables,
    crm_id: i64,
    lead_id: i64,
    event_id: i64,
    ticket_id: i64,
    till_id: i64,
}

impl Channels {
    /// One CRM account (2% have two).
    fn crm(&mut self, person: &Person, pid: i64, rng: &mut ChaCha8Rng) {
        let accounts = if rng.random_bool(0.02) { 2 } else { 1 };
        for _ in 0..accounts {
            let (mut email, phone) = contact(person, 0.95, 0.80, rng);
            if phone.is_some() && email.is_some() && !person.shared_phone && rng.random_bool(0.03) {
                email = email.map(|e| e.replace('@', " at "));
            }
            self.crm_id += 1;
            let address =
                format!("{} {}, Madrid", STREETS[rng.random_range(0..STREETS.len())], rng.random_range(1..200));
            self.t.crm.push((self.crm_id, written_name(person, rng), email, phone, address));
            self.t.truth.push(("crm_customers", self.crm_id.to_string(), pid));
        }
    }

    /// One or two marketing leads.
    fn leads(&mut self, person: &Person, pid: i64, rng: &mut ChaCha8Rng) {
        for _ in 0..rng.random_range(1..=2) {
            let (email, phone) = contact(person, 0.90, 0.50, rng);
            let created = START + rng.random_range(0..300) * DAY + rng.random_range(0..DAY);
            let campaign = CAMPAIGNS[rng.random_range(0..CAMPAIGNS.len())].to_string();
            let lead_id = self.lead_id;
            self.t.leads.push((lead_id, written_name(person, rng), email, phone, created, campaign, person.consent));
            self.t.truth.push(("marketing_leads", lead_id.to_string(), pid));
            self.lead_id += 1;
        }
    }

    /// A web trail on one or two devices; some events carry a login.
    fn web(&mut self, person: &Person, pid: i64, anonymous: bool, rng: &mut ChaCha8Rng) {
        let logs_in = !anonymous && person.email.is_some();
        // Anonymous visitors use one device: nothing ties two together.
        let devices: Vec<String> = (0..if anonymous { 1 } else { rng.random_range(1..=2) })
            .map(|d| format!("dev-{pid:06}-{d}-{:04x}", rng.random_range(0..65536u32)))
            .collect();
        let first = self.t.events.len();
        for _ in 0..rng.random_range(3..=15) {
            let d = rng.random_range(0..devices.len());
            let cookie = format!("ck-{pid:06}-{d}-{}", rng.random_range(0..3));
            let login = logs_in && rng.random_bool(0.25);
            let email = login.then(|| person.email.clone()).flatten();
            let kind = EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())].to_string();
            let page = PAGES[rng.random_range(0..PAGES.len())].to_string();
            let product = (kind != "search").then(|| rng.random_range(1..200));
            let ts = START + rng.random_range(0..330) * DAY + rng.random_range(0..DAY);
            self.t.events.push((self.event_id, cookie, devices[d].clone(), email, kind, page, product, ts));
            self.t.truth.push(("web_events", self.event_id.to_string(), pid));
            self.event_id += 1;
        }
        // Every device of a person who logs in saw a login once.
        if logs_in {
            let events = &mut self.t.events[first..];
            for device in &devices {
                let mine = || events.iter().filter(|e| &e.2 == device);
                if mine().any(|e| e.3.is_none()) && !mine().any(|e| e.3.is_some()) {
                    if let Some(e) = events.iter_mut().find(|e| &e.2 == device) {
                        e.3 = person.email.clone();
                    }
                }
            }
        }
    }

    /// Till tickets, most with a loyalty card; each identifiable somehow.
    fn pos(&mut self, person: &Person, pid: i64, rng: &mut ChaCha8Rng) {
        let card = rng.random_bool(0.70).then(|| {
            self.till_id += 1;
            self.till_id
        });
        for n in 0..rng.random_range(1..=6) {
            let Some((till, email, phone)) = ticket_identity(person, card, n == 0, rng) else {
                continue;
            };
            let ts = START + rng.random_range(0..330) * DAY + rng.random_range(0..DAY);
            let amount = (rng.random_range(300..20_000) as f64) / 100.0;
            self.t.tickets.push((self.ticket_id, till, email, phone, ts, rng.random_range(1..200), amount));
            self.t.truth.push(("pos_tickets", self.ticket_id.to_string(), pid));
            self.ticket_id += 1;
        }
    }
}

/// What identifies one till ticket: the card, an email, a phone. The
/// card's first ticket registers it (an email or phone too); a ticket with
/// nothing falls back to the card or the person's contact; `None` when the
/// person has nothing at all.
fn ticket_identity(
    person: &Person,
    card: Option<i64>,
    first: bool,
    rng: &mut ChaCha8Rng,
) -> Option<(Option<i64>, Option<String>, Option<String>)> {
    let mut till = if first { card } else { card.filter(|_| rng.random_bool(0.90)) };
    let mut email =
        person.email.as_ref().filter(|_| person.shared_phone || rng.random_bool(0.2)).map(|e| messy_email(e, rng));
    let mut phone = person.phone.as_ref().filter(|_| rng.random_bool(0.2)).map(|ph| messy_phone(ph, rng));
    if email.is_none() && phone.is_some() {
        email = person.email.clone();
    }
    if first && card.is_some() && email.is_none() && phone.is_none() {
        email = person.email.clone();
        phone = if email.is_none() { person.phone.clone() } else { None };
    }
    if till.is_none() && email.is_none() && phone.is_none() {
        till = card;
        if till.is_none() {
            email = person.email.clone();
            phone = if email.is_none() { person.phone.clone() } else { None };
        }
    }
    if till.is_none() && email.is_none() && phone.is_none() {
        return None;
    }
    Some((till, email, phone))
}

/// The email and phone a CRM or lead record carries: each kept at its rate
/// (a household member's email always), written messily; a phone alone
/// only for somebody without an email.
fn contact(
    person: &Person,
    email_rate: f64,
    phone_rate: f64,
    rng: &mut ChaCha8Rng,
) -> (Option<String>, Option<String>) {
    let email = person
        .email
        .as_ref()
        .filter(|_| person.shared_phone || rng.random_bool(email_rate))
        .map(|e| messy_email(e, rng));
    let phone = person.phone.as_ref().filter(|_| rng.random_bool(phone_rate)).map(|ph| messy_phone(ph, rng));
    match email {
        Some(e) => (Some(e), phone),
        None => (person.email.clone(), phone.or_else(|| person.phone.clone())),
    }
}

fn messy_email(email: &str, rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..5) {
        0 => email.to_uppercase(),
        1 => format!("  {email} "),
        2 => {
            let mut c = email.chars();
            c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
        }
        _ => email.to_string(),
    }
}

fn messy_phone(national: &str, rng: &mut ChaCha8Rng) -> String {
    let d = national;
    match rng.random_range(0..5) {
        0 => format!("+34 {} {} {}", &d[0..3], &d[3..6], &d[6..9]),
        1 => format!("0034{d}"),
        2 => format!("{}-{}-{}", &d[0..3], &d[3..6], &d[6..9]),
        3 => format!("(+34) {} {} {} {}", &d[0..3], &d[3..5], &d[5..7], &d[7..9]),
        _ => d.to_string(),
    }
}

fn strings(values: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn micros(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values.collect::<Vec<_>>()))
}

fn write_tables(out: &Path, t: &Tables) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    write_table(
        &out.join("crm_customers.parquet"),
        vec![
            ("crm_id", Arc::new(Int64Array::from_iter_values(t.crm.iter().map(|r| r.0))) as ArrayRef),
            ("name", strings(t.crm.iter().map(|r| Some(r.1.clone())))),
            ("email", strings(t.crm.iter().map(|r| r.2.clone()))),
            ("phone", strings(t.crm.iter().map(|r| r.3.clone()))),
            ("address", strings(t.crm.iter().map(|r| Some(r.4.clone())))),
        ],
    )?;
    write_table(
        &out.join("marketing_leads.parquet"),
        vec![
            ("lead_id", Arc::new(Int64Array::from_iter_values(t.leads.iter().map(|r| r.0))) as ArrayRef),
            ("name", strings(t.leads.iter().map(|r| Some(r.1.clone())))),
            ("email", strings(t.leads.iter().map(|r| r.2.clone()))),
            ("phone", strings(t.leads.iter().map(|r| r.3.clone()))),
            ("created_at", micros(t.leads.iter().map(|r| r.4))),
            ("campaign", strings(t.leads.iter().map(|r| Some(r.5.clone())))),
            ("marketing_consent", Arc::new(t.leads.iter().map(|r| Some(r.6)).collect::<BooleanArray>())),
        ],
    )?;
    write_table(
        &out.join("web_events.parquet"),
        vec![
            ("event_id", Arc::new(Int64Array::from_iter_values(t.events.iter().map(|r| r.0))) as ArrayRef),
            ("cookie_id", strings(t.events.iter().map(|r| Some(r.1.clone())))),
            ("device_id", strings(t.events.iter().map(|r| Some(r.2.clone())))),
            ("email", strings(t.events.iter().map(|r| r.3.clone()))),
            ("event_type", strings(t.events.iter().map(|r| Some(r.4.clone())))),
            ("page", strings(t.events.iter().map(|r| Some(r.5.clone())))),
            ("product_id", Arc::new(t.events.iter().map(|r| r.6).collect::<Int64Array>())),
            ("event_at", micros(t.events.iter().map(|r| r.7))),
        ],
    )?;
    write_table(
        &out.join("pos_tickets.parquet"),
        vec![
            ("ticket_id", Arc::new(Int64Array::from_iter_values(t.tickets.iter().map(|r| r.0))) as ArrayRef),
            ("till_customer_id", Arc::new(t.tickets.iter().map(|r| r.1).collect::<Int64Array>())),
            ("email", strings(t.tickets.iter().map(|r| r.2.clone()))),
            ("phone", strings(t.tickets.iter().map(|r| r.3.clone()))),
            ("sold_at", micros(t.tickets.iter().map(|r| r.4))),
            ("product_id", Arc::new(Int64Array::from_iter_values(t.tickets.iter().map(|r| r.5)))),
            ("amount", Arc::new(Float64Array::from_iter_values(t.tickets.iter().map(|r| r.6)))),
        ],
    )?;
    write_table(
        &out.join("cdp_truth.parquet"),
        vec![
            ("source", strings(t.truth.iter().map(|r| Some(r.0.to_string())))),
            ("record_id", strings(t.truth.iter().map(|r| Some(r.1.clone())))),
            ("person_id", Arc::new(Int64Array::from_iter_values(t.truth.iter().map(|r| r.2)))),
        ],
    )
}

/// Writes a small hand-made population where every rule matters once: case
/// and spaces in emails, five phone formats, a household sharing a phone,
/// a person without an email linked by phone, an invalid email rescued by
/// a phone, two CRM accounts of one person, a loyalty card, cookies and a
/// device joined by a login, an anonymous visitor. Resolved right, its
/// pairwise precision and recall are both 1.
pub fn fixture(out: &Path) -> std::io::Result<CdpCounts> {
    let s = |v: &str| Some(v.to_string());
    let crm = |id: i64, name: &str, email: Option<String>, phone: Option<String>| -> CrmRow {
        (id, name.to_string(), email, phone, "Calle Mayor 1, Madrid".to_string())
    };
    let lead = |id: i64, email: Option<String>, phone: Option<String>, consent: bool| -> LeadRow {
        (id, "lead".into(), email, phone, START + id * DAY, "newsletter".into(), consent)
    };
    let event = |id: i64, cookie: &str, device: &str, email: Option<String>| -> EventRow {
        (id, cookie.into(), device.into(), email, "page_view".into(), "/".into(), None, START + id * DAY)
    };
    let ticket = |id: i64, till: Option<i64>, email: Option<String>, phone: Option<String>| -> TicketRow {
        (id, till, email, phone, START + id * DAY, 7, 10.0 * id as f64)
    };
    // (row, person)
    let crm_rows = [
        (crm(1001, "Ana Pérez", s("  ANA.PEREZ@EMAIL.COM "), s("+34 612 000 001")), 1),
        (crm(1002, "Bruno Díaz", s("bruno.diaz@mail.net"), s("0034612000002")), 2),
        (crm(1003, "Carla Díaz", s("CARLA.DIAZ@MAIL.NET"), s("612000002")), 3),
        (crm(1004, "Diego Ruiz", None, s("612000004")), 4),
        (crm(1006, "Fede Soto", s("fede@correo.es"), None), 6),
        (crm(1007, "Gema Luna", s("gema at mail.net"), s("612-000-007")), 7),
        (crm(1008, "Hugo Vega", s("hugo.vega@shop.org"), None), 8),
        (crm(1009, "  HUGO VEGA ", s("Hugo.Vega@Shop.org"), s("612000008")), 8),
    ];
    let lead_rows = [
        (lead(1, s("ana.perez@email.com"), None, true), 1),
        (lead(2, s("carla.diaz@mail.net"), s("(+34) 612 00 00 02"), false), 3),
        (lead(3, None, s("0034612000004"), true), 4),
        (lead(4, s("gema@mail.net"), s("+34 612 000 007"), true), 7),
    ];
    let event_rows = [
        (event(1, "ck-a1", "dev-a", None), 1),
        (event(2, "ck-a2", "dev-a", s("ana.perez@email.com")), 1),
        (event(3, "ck-a1", "dev-a", None), 1),
        (event(4, "ck-e1", "dev-e", None), 5),
        (event(5, "ck-e2", "dev-e", None), 5),
        (event(6, "ck-e1", "dev-e", None), 5),
        (event(7, "ck-i1", "dev-i", s("ines@correo.es")), 9),
        (event(8, "ck-i2", "dev-i", None), 9),
    ];
    let ticket_rows = [
        (ticket(1, Some(501), s("ana.perez@email.com"), None), 1),
        (ticket(2, Some(501), None, None), 1),
        (ticket(3, None, s("bruno.diaz@mail.net"), s("612-000-002")), 2),
        (ticket(4, None, None, s("+34 612 000 004")), 4),
        (ticket(5, Some(502), s("INES@correo.es"), None), 9),
        (ticket(6, Some(502), None, None), 9),
    ];
    let mut t = Tables::default();
    for (row, person) in crm_rows {
        t.truth.push(("crm_customers", row.0.to_string(), person));
        t.crm.push(row);
    }
    for (row, person) in lead_rows {
        t.truth.push(("marketing_leads", row.0.to_string(), person));
        t.leads.push(row);
    }
    for (row, person) in event_rows {
        t.truth.push(("web_events", row.0.to_string(), person));
        t.events.push(row);
    }
    for (row, person) in ticket_rows {
        t.truth.push(("pos_tickets", row.0.to_string(), person));
        t.tickets.push(row);
    }
    write_tables(out, &t)?;
    Ok(CdpCounts {
        people: 9,
        crm_customers: t.crm.len(),
        marketing_leads: t.leads.len(),
        web_events: t.events.len(),
        pos_tickets: t.tickets.len(),
    })
}
