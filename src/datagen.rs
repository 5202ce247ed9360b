//! A deterministic generator of dirty raw shop data (SPEC §2), and the
//! golden fixture. Scale 1 is about 10k customers, 100k orders and 300k
//! order lines; every count is linear in the scale. Spend per customer is
//! Pareto-distributed.
//!
//! Dirt, by table (rates are of the clean row count):
//! - customers: 1% exact duplicate rows; 10% emails in upper case, 10% with
//!   surrounding spaces; 10% names with surrounding spaces; about 15% never
//!   order; `created_at` is ISO-8601 text, `id` is INT32.
//! - products: 5% never sold; 5% categories with surrounding spaces.
//! - orders: 1% exact duplicates; 0.5% NULL customer_id; 2% without lines;
//!   `order_date` is DATE, `total_amount` DOUBLE (the header: line total,
//!   sometimes discounted).
//! - order_items: 1% exact duplicates; 2% quantity <= 0 (returns);
//!   `quantity` is DOUBLE holding whole numbers.

pub mod cdp;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use parquet::arrow::ArrowWriter;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::storage::publish::writer_properties;

/// Row counts of one generated data set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub customers: usize,
    pub products: usize,
    pub orders: usize,
    pub order_items: usize,
}

const FIRST: &[&str] = &[
    "Juan", "Laura", "Ana", "Carlos", "María", "José", "Lucía", "Pedro", "Sofía", "Diego", "Elena", "Pablo", "Marta",
    "Javier", "Carmen", "Luis", "Isabel", "Andrés", "Paula", "Miguel",
];
const LAST: &[&str] = &[
    "Pérez",
    "Gómez",
    "García",
    "López",
    "Martínez",
    "Sánchez",
    "Romero",
    "Torres",
    "Díaz",
    "Ruiz",
    "Vargas",
    "Castro",
    "Ortega",
    "Navarro",
    "Molina",
    "Suárez",
];
const CATEGORIES: &[&str] =
    &["Electrónica", "Muebles", "Hogar", "Deportes", "Libros", "Juguetes", "Moda", "Alimentación", "Jardín", "Oficina"];
const DOMAINS: &[&str] = &["email.com", "correo.es", "mail.net", "shop.org"];

fn days(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Generates the four raw tables at `scale` into `out` as Parquet.
pub fn generate(out: &Path, scale: f64, seed: u64) -> std::io::Result<Counts> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_customers = ((10_000.0 * scale).round() as usize).max(2);
    let n_products = ((500.0 * scale).round() as usize).max(20);
    let n_orders = ((100_000.0 * scale).round() as usize).max(2);
    std::fs::create_dir_all(out)?;

    // Products: a few never sell (the last 5%), popularity is skewed.
    let sellable = n_products - (n_products / 20).max(1);
    let mut p_id = Vec::with_capacity(n_products);
    let mut p_name = Vec::with_capacity(n_products);
    let mut p_cat = Vec::with_capacity(n_products);
    let mut price = Vec::with_capacity(n_products);
    for i in 0..n_products {
        p_id.push(i as i64 + 1);
        let cat = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        p_name.push(format!("{cat} {}", i + 1));
        p_cat.push(if rng.random_bool(0.05) { format!("  {cat} ") } else { cat.to_string() });
        price.push(round2(rng.random_range(2.0..400.0_f64)));
    }
    let product_weights: Vec<f64> = (0..sellable).map(|i| 1.0 / (i as f64 + 10.0)).collect();
    let product_cdf = cdf(&product_weights);

    // Customers: Pareto weights; about 15% never order.
    let mut c_rows: Vec<(i32, String, String, String)> = Vec::with_capacity(n_customers);
    let mut weights = Vec::with_capacity(n_customers);
    for i in 0..n_customers {
        let id = i as i32 + 1;
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let mut name = format!("{first} {last}");
        if rng.random_bool(0.10) {
            name = format!("  {name} ");
        }
        let local: String = format!("{}.{}{id}", ascii(first), ascii(last)).to_lowercase();
        let mut email = format!("{local}@{}", DOMAINS[rng.random_range(0..DOMAINS.len())]);
        if rng.random_bool(0.10) {
            email = email.to_uppercase();
        }
        if rng.random_bool(0.10) {
            email = format!(" {email}  ");
        }
        let created = ymd(2021, 1, 1) + chrono::Duration::days(rng.random_range(0..1095));
        c_rows.push((id, name, email, created.format("%Y-%m-%d").to_string()));
        let u: f64 = rng.random_range(0.0..1.0);
        weights.push(if rng.random_bool(0.15) { 0.0 } else { (1.0 - u).powf(-1.0 / 1.16) });
    }
    let customer_cdf = cdf(&weights);
    duplicate(&mut c_rows, 0.01, &mut rng);

    // Orders and their lines.
    let first_day = days(ymd(2022, 1, 1));
    let mut o_rows: Vec<(i64, Option<i64>, i32, f64)> = Vec::with_capacity(n_orders);
    let mut l_rows: Vec<(i64, i64, i64, f64, f64)> = Vec::with_capacity(n_orders * 3);
    for i in 0..n_orders {
        let id = i as i64 + 1;
        let customer = pick(&customer_cdf, &mut rng) as i64 + 1;
        let customer = if rng.random_bool(0.005) { None } else { Some(customer) };
        let date = first_day + rng.random_range(0..1096);
        let mut total = 0.0;
        if rng.random_bool(0.02) {
            total = round2(rng.random_range(5.0..300.0));
        } else {
            for _ in 0..rng.random_range(1..=5) {
                let product = pick(&product_cdf, &mut rng);
                let mut qty = rng.random_range(1..=5) as f64;
                if rng.random_bool(0.02) {
                    qty = -(rng.random_range(0..=2) as f64);
                } else {
                    total += qty * price[product];
                }
                l_rows.push((l_rows.len() as i64 + 1, id, product as i64 + 1, qty, price[product]));
            }
            if rng.random_bool(0.10) {
                total *= rng.random_range(0.85..0.95);
            }
            total = round2(total);
        }
        o_rows.push((id, customer, date, total));
    }
    duplicate(&mut o_rows, 0.01, &mut rng);
    duplicate(&mut l_rows, 0.01, &mut rng);

    let counts =
        Counts { customers: c_rows.len(), products: n_products, orders: o_rows.len(), order_items: l_rows.len() };
    write_table(
        &out.join("customers.parquet"),
        vec![
            ("id", Arc::new(Int32Array::from_iter_values(c_rows.iter().map(|r| r.0))) as ArrayRef),
            ("name", Arc::new(StringArray::from_iter_values(c_rows.iter().map(|r| r.1.as_str())))),
            ("email", Arc::new(StringArray::from_iter_values(c_rows.iter().map(|r| r.2.as_str())))),
            ("created_at", Arc::new(StringArray::from_iter_values(c_rows.iter().map(|r| r.3.as_str())))),
        ],
    )?;
    write_table(
        &out.join("products.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(p_id)) as ArrayRef),
            ("name", Arc::new(StringArray::from(p_name))),
            ("category", Arc::new(StringArray::from(p_cat))),
        ],
    )?;
    write_table(
        &out.join("orders.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from_iter_values(o_rows.iter().map(|r| r.0))) as ArrayRef),
            ("customer_id", Arc::new(Int64Array::from_iter(o_rows.iter().map(|r| r.1)))),
            ("order_date", Arc::new(Date32Array::from_iter_values(o_rows.iter().map(|r| r.2)))),
            ("total_amount", Arc::new(Float64Array::from_iter_values(o_rows.iter().map(|r| r.3)))),
        ],
    )?;
    write_table(
        &out.join("order_items.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from_iter_values(l_rows.iter().map(|r| r.0))) as ArrayRef),
            ("order_id", Arc::new(Int64Array::from_iter_values(l_rows.iter().map(|r| r.1)))),
            ("product_id", Arc::new(Int64Array::from_iter_values(l_rows.iter().map(|r| r.2)))),
            ("quantity", Arc::new(Float64Array::from_iter_values(l_rows.iter().map(|r| r.3)))),
            ("unit_price", Arc::new(Float64Array::from_iter_values(l_rows.iter().map(|r| r.4)))),
        ],
    )?;
    Ok(counts)
}

/// Writes the golden example of SPEC §2 into `out`, with the other raw
/// types than the generator uses (DATE `created_at`, text `order_date`,
/// integer `quantity`), so both kinds are exercised.
pub fn golden(out: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let d = |y, m, dd| days(ymd(y, m, dd));
    write_table(
        &out.join("customers.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["Juan Pérez", "Laura Gómez"]))),
            ("email", Arc::new(StringArray::from(vec!["juan@email.com", "laura@email.com"]))),
            ("created_at", Arc::new(Date32Array::from(vec![d(2023, 1, 15), d(2023, 2, 10)]))),
        ],
    )?;
    write_table(
        &out.join("products.parquet"),
        vec![
            ("id", Arc::new(Int32Array::from(vec![10, 11, 12])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["Laptop", "Mouse", "Silla Oficina"]))),
            ("category", Arc::new(StringArray::from(vec!["Electrónica", "Electrónica", "Muebles"]))),
        ],
    )?;
    write_table(
        &out.join("orders.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("customer_id", Arc::new(Int64Array::from(vec![1, 2, 1]))),
            ("order_date", Arc::new(StringArray::from(vec!["2023-04-10", "2023-05-20", "2023-06-05"]))),
            ("total_amount", Arc::new(Float64Array::from(vec![150.0, 200.0, 75.0]))),
        ],
    )?;
    write_table(
        &out.join("order_items.parquet"),
        vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("order_id", Arc::new(Int64Array::from(vec![1, 1, 2]))),
            ("product_id", Arc::new(Int64Array::from(vec![10, 11, 12]))),
            ("quantity", Arc::new(Int64Array::from(vec![2, 1, 4]))),
            ("unit_price", Arc::new(Float64Array::from(vec![50.0, 50.0, 50.0]))),
        ],
    )?;
    Ok(())
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'á' => 'a',
            'é' => 'e',
            'í' => 'i',
            'ó' => 'o',
            'ú' => 'u',
            'ñ' => 'n',
            'Á' => 'A',
            'É' => 'E',
            'Í' => 'I',
            'Ó' => 'O',
            'Ú' => 'U',
            other => other,
        })
        .collect()
}

fn cdf(weights: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

fn pick(cdf: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let total = cdf.last().copied().unwrap_or(0.0);
    let x = rng.random_range(0.0..total);
    cdf.partition_point(|c| *c <= x).min(cdf.len() - 1)
}

/// Inserts exact copies of `rate` of the rows at random places: one at a
/// time, each copying a row of the list as it stands and inserting it at a
/// position of that list. The list is held in chunks, so an insert moves
/// one chunk, not the whole tail (9 M order lines at scale 30).
fn duplicate<T: Clone>(rows: &mut Vec<T>, rate: f64, rng: &mut ChaCha8Rng) {
    const CHUNK: usize = 4096;
    let n = ((rows.len() as f64) * rate).round() as usize;
    if n == 0 {
        return;
    }
    let mut chunks: Vec<Vec<T>> = std::mem::take(rows).chunks(CHUNK).map(<[T]>::to_vec).collect();
    let mut len: usize = chunks.iter().map(Vec::len).sum();
    // Returns (chunk, offset) of position `at`; `at == len` is the end.
    let locate = |chunks: &Vec<Vec<T>>, mut at: usize| {
        for (i, c) in chunks.iter().enumerate() {
            if at < c.len() {
                return (i, at);
            }
            at -= c.len();
        }
        (chunks.len() - 1, chunks.last().map_or(0, Vec::len))
    };
    for _ in 0..n {
        let from = rng.random_range(0..len);
        let to = rng.random_range(0..=len);
        let (fc, fo) = locate(&chunks, from);
        let row = chunks[fc][fo].clone();
        let (tc, to) = locate(&chunks, to.min(len));
        chunks[tc].insert(to, row);
        if chunks[tc].len() >= 2 * CHUNK {
            let tail = chunks[tc].split_off(CHUNK);
            chunks.insert(tc + 1, tail);
        }
        len += 1;
    }
    *rows = chunks.into_iter().flatten().collect();
}

/// Writes one Parquet file of the given columns (all nullable).
pub fn write_table(path: &Path, columns: Vec<(&str, ArrayRef)>) -> std::io::Result<()> {
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect())
        .map_err(std::io::Error::other)?;
    let mut writer =
        ArrowWriter::try_new(File::create(path)?, schema, Some(writer_properties())).map_err(std::io::Error::other)?;
    writer.write(&batch).map_err(std::io::Error::other)?;
    writer.close().map_err(std::io::Error::other)?;
    Ok(())
}
