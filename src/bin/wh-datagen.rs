//! `wh-datagen`: write dirty raw shop data at a scale, or the golden fixture.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Generates the raw `shop` source of the example project as Parquet.
#[derive(Debug, Parser)]
#[command(name = "wh-datagen", version, about)]
struct Args {
    /// Output folder (customers/products/orders/order_items.parquet).
    #[arg(long, default_value = "data/raw")]
    out: PathBuf,
    /// 1 is about 10k customers, 100k orders, 300k lines; linear.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Random seed; the same seed and scale give the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the golden example of SPEC §2 instead.
    #[arg(long)]
    golden: bool,
    /// Write the customer data platform's sources (crm_customers,
    /// marketing_leads, web_events, pos_tickets) and their answer file
    /// (cdp_truth.parquet) instead; 1 is 10,000 people.
    #[arg(long, conflicts_with = "golden")]
    cdp: bool,
    /// With --cdp: the small hand-made population every linking rule
    /// meets (precision and recall 1 when resolved right), not a scale.
    #[arg(long, requires = "cdp")]
    fixture: bool,
    /// First order day (YYYY-MM-DD).
    #[arg(long, default_value = "2022-01-01")]
    start: chrono::NaiveDate,
    /// Days of order history.
    #[arg(long, default_value_t = 1096, value_parser = clap::value_parser!(u32).range(1..=36_600))]
    days: u32,
    /// Weekly seasonality: Fridays and Saturdays sell most, Sundays least.
    #[arg(long)]
    weekly: bool,
    /// Volume grows by this percentage from the first day to the last.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    trend_pct: f64,
    /// Inject a drop: DAY:PERCENT (whole orders) or DAY:CATEGORY:PERCENT
    /// (that category's lines); repeatable.
    #[arg(long = "drop", value_name = "DROP")]
    drops: Vec<wh::datagen::sales::Drop>,
    /// Inject a level shift: DAY:PERCENT, the volume from that day on.
    #[arg(long, allow_hyphen_values = true)]
    level_shift: Option<wh::datagen::sales::Shift>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.golden {
        return match wh::datagen::golden(&args.out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write the golden fixture to `{}`: {e}", args.out.display());
                ExitCode::from(1)
            }
        };
    }
    if args.scale.is_nan() || args.scale <= 0.0 {
        eprintln!("error: --scale must be greater than 0");
        return ExitCode::from(2);
    }
    if args.cdp {
        let written = match args.fixture {
            true => wh::datagen::cdp::fixture(&args.out),
            false => wh::datagen::cdp::generate(&args.out, args.scale, args.seed),
        };
        return match written {
            Ok(c) => {
                eprintln!(
                    "Wrote {} people as {} CRM customers, {} leads, {} web events, {} tickets to {}",
                    c.people,
                    c.crm_customers,
                    c.marketing_leads,
                    c.web_events,
                    c.pos_tickets,
                    args.out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write to `{}`: {e}", args.out.display());
                ExitCode::from(1)
            }
        };
    }
    let shape = wh::datagen::sales::Shape {
        start: args.start,
        days: args.days,
        weekly: args.weekly,
        trend_pct: args.trend_pct,
        drops: args.drops,
        shift: args.level_shift,
    };
    match wh::datagen::generate_shaped(&args.out, args.scale, args.seed, &shape) {
        Ok(c) => {
            eprintln!(
                "Wrote {} customers, {} products, {} orders, {} order lines to {}",
                c.customers,
                c.products,
                c.orders,
                c.order_items,
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write to `{}`: {e}", args.out.display());
            ExitCode::from(1)
        }
    }
}
