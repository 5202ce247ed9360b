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
    match wh::datagen::generate(&args.out, args.scale, args.seed) {
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
