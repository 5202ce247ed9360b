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
pub mod sales;

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
    generate_shaped(out, scale, seed, &sales::Shape::default())
}

/// Generates the four raw tables with orders spread over time as `shape`
/// says (see [`sales`]).
pub fn generate_shaped(out: &Path, scale: f64, seed: u64, shape: &sales::Shape) -> std::io::Result<Counts> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_customers = ((10_000.0 * scale).round() as usize).max(2);
    let n_products = ((500.0 * scale).round() as usize).max(20);
    let n_orders = ((100_000.0 * scale).round() as usize).max(2);
    std::fs::create_dir_all(out)?;
    let products = products(n_products, &mut rng);
    let (mut customers, customer_cdf) = customers(n_customers, &mut rng);
    duplicate(&mut customers, 0.01, &mut rng);
    let (mut orders, mut lines) = orders(n_orders, &customer_cdf, &products, shape, &mut rng);
    duplicate(&mut orders, 0.01, &mut rng);
    duplicate(&mut lines, 0.01, &mut rng);
    write_raw(out, &customers, products, &orders, &lines)?;
    Ok(Counts { customers: customers.len(), products: n_products, orders: orders.len(), order_items: lines.len() })
}

/// The products: ids, names, categories (some padded), prices, and the
/// popularity of the sellable ones (a few never sell: the last 5%).
struct Products {
    id: Vec<i64>,
    name: Vec<String>,
    category: Vec<String>,
    price: Vec<f64>,
    cdf: Vec<f64>,
}

fn products(n: usize, rng: &mut ChaCha8Rng) -> Products {
    let sellable = n - (n / 20).max(1);
    let mut p = Products {
        id: Vec::with_capacity(n),
        name: Vec::with_capacity(n),
        category: Vec::with_capacity(n),
        price: Vec::with_capacity(n),
        cdf: Vec::new(),
    };
    for i in 0..n {
        p.id.push(i as i64 + 1);
        let cat = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        p.name.push(format!("{cat} {}", i + 1));
        p.category.push(if rng.random_bool(0.05) { format!("  {cat} ") } else { cat.to_string() });
        p.price.push(round2(rng.random_range(2.0..400.0_f64)));
    }
    let weights: Vec<f64> = (0..sellable).map(|i| 1.0 / (i as f64 + 10.0)).collect();
    p.cdf = cdf(&weights);
    p
}

/// A customer row: id, name, email, created_at (text).
type CustomerRow = (i32, String, String, String);

/// Customers with messy names and emails, and how often each orders
/// (Pareto weights; about 15% never order).
fn customers(n: usize, rng: &mut ChaCha8Rng) -> (Vec<CustomerRow>, Vec<f64>) {
    let mut rows: Vec<CustomerRow> = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for i in 0..n {
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
        rows.push((id, name, email, created.format("%Y-%m-%d").to_string()));
        let u: f64 = rng.random_range(0.0..1.0);
        weights.push(if rng.random_bool(0.15) { 0.0 } else { (1.0 - u).powf(-1.0 / 1.16) });
    }
    (rows, cdf(&weights))
}

/// An order row: id, customer (NULL for a few), day, total.
type OrderRow = (i64, Option<i64>, i32, f64);
/// An order line: id, order, product, quantity, unit price.
type LineRow = (i64, i64, i64, f64, f64);

/// Orders and their lines: some orders without lines, some lines with a
/// non-positive quantity, some totals discounted.
fn orders(
    n: usize,
    customer_cdf: &[f64],
    products: &Products,
    shape: &sales::Shape,
    rng: &mut ChaCha8Rng,
) -> (Vec<OrderRow>, Vec<LineRow>) {
    let price = &products.price;
    let first_day = days(shape.start);
    let day_cdf = shape.day_cdf();
    let mut o_rows: Vec<OrderRow> = Vec::with_capacity(n);
    let mut l_rows: Vec<LineRow> = Vec::with_capacity(n * 3);
    for i in 0..n {
        let id = i as i64 + 1;
        let customer = pick(customer_cdf, rng) as i64 + 1;
        let customer = if rng.random_bool(0.005) { None } else { Some(customer) };
        let offset = shape.draw_day(day_cdf.as_deref(), rng);
        let date = first_day + offset;
        if !shape.drops.is_empty() && shape.drops_order(offset, rng) {
            continue;
        }
        let mut total = 0.0;
        if rng.random_bool(0.02) {
            total = round2(rng.random_range(5.0..300.0));
        } else {
            for _ in 0..rng.random_range(1..=5) {
                let product = pick(&products.cdf, rng);
                let mut qty = rng.random_range(1..=5) as f64;
                if !shape.drops.is_empty() && shape.drops_line(offset, &products.category[product], rng) {
                    continue;
                }
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
    (o_rows, l_rows)
}

/// Writes the four raw tables.
fn write_raw(
    out: &Path,
    c_rows: &[CustomerRow],
    products: Products,
    o_rows: &[OrderRow],
    l_rows: &[LineRow],
) -> std::io::Result<()> {
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
            ("id", Arc::new(Int64Array::from(products.id)) as ArrayRef),
            ("name", Arc::new(StringArray::from(products.name))),
            ("category", Arc::new(StringArray::from(products.category))),
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
    )
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
