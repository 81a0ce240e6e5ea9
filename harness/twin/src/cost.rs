//! What the Karpenter nodes of a run would cost: node-hours per VM size, times the price
//! snapshot's hourly price ([`crate::skus::PRICE_SNAPSHOT`]); a size the snapshot does not
//! price, or a node in another region than the snapshot's, is named, never guessed.

use std::collections::BTreeMap;

use crate::skus::{self, PRICE_SNAPSHOT};

pub use edw_model::cost::{CostEstimate, NodeSpan, SizeCost};

/// What `spans` cost at the snapshot's prices (their `from`/`until` in seconds).
pub fn estimate(spans: &[NodeSpan]) -> CostEstimate {
    let mut by_size: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for span in spans {
        let size = span
            .size
            .clone()
            .unwrap_or_else(|| "unknown size".to_owned());
        let entry = by_size.entry(size).or_default();
        entry.0 += 1;
        entry.1 += (span.until - span.from).max(0.0) / 3600.0;
    }
    let mut sizes: Vec<SizeCost> = by_size
        .into_iter()
        .map(|(size, (nodes, node_hours))| {
            let sku = skus::find(&size);
            let usd_per_hour = sku.map(|s| s.price);
            SizeCost {
                nodes,
                node_hours,
                usd_per_hour,
                price_quoted: sku.is_some_and(|s| s.price_quoted),
                usd: usd_per_hour.map(|p| p * node_hours),
                size,
            }
        })
        .collect();
    sizes.sort_by(|a, b| {
        b.usd
            .unwrap_or(-1.0)
            .total_cmp(&a.usd.unwrap_or(-1.0))
            .then_with(|| a.size.cmp(&b.size))
    });
    CostEstimate {
        node_hours: sizes.iter().map(|s| s.node_hours).sum(),
        total_usd: sizes.iter().filter_map(|s| s.usd).sum(),
        unpriced: sizes
            .iter()
            .filter(|s| s.usd.is_none())
            .map(|s| s.size.clone())
            .collect(),
        still_running: spans.iter().filter(|s| !s.ended).count() as u64,
        sizes,
        price_region: PRICE_SNAPSHOT.region,
        price_date: PRICE_SNAPSHOT.date,
        price_source: PRICE_SNAPSHOT.source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(size: Option<&str>, from: f64, until: f64) -> NodeSpan {
        NodeSpan {
            size: size.map(str::to_owned),
            region: Some("eastus".to_owned()),
            from,
            until,
            ended: true,
        }
    }

    #[test]
    fn node_hours_times_the_snapshot_price_and_unknown_sizes_are_named() {
        let cost = estimate(&[
            span(Some("Standard_D2als_v6"), 0.0, 1800.0),
            span(Some("Standard_D2als_v6"), 600.0, 2400.0),
            span(Some("Standard_E4s_v5"), 0.0, 3600.0),
            NodeSpan {
                ended: false,
                ..span(None, 0.0, 360.0)
            },
        ]);
        let d2 = &cost.sizes[0];
        assert_eq!((d2.size.as_str(), d2.nodes), ("Standard_D2als_v6", 2));
        assert!((d2.node_hours - 1.0).abs() < 1e-9);
        assert!((cost.total_usd - 0.0804).abs() < 1e-9);
        assert!((cost.node_hours - 2.1).abs() < 1e-9);
        assert_eq!(cost.unpriced, ["Standard_E4s_v5", "unknown size"]);
        assert_eq!(cost.still_running, 1);
        assert_eq!(
            d2.describe(PRICE_SNAPSHOT.region),
            "Standard_D2als_v6: 2 nodes, 1.000 node-h × $0.0804/h = $0.0804"
        );
        assert_eq!(
            cost.sizes[1].describe(PRICE_SNAPSHOT.region),
            "Standard_E4s_v5: 1 node, 1.000 node-h, no price for Standard_E4s_v5 in the eastus snapshot"
        );
        assert!(cost
            .describe_total()
            .contains("without Standard_E4s_v5, unknown size (no price)"));
        assert!(cost
            .describe_prices()
            .contains("eastus snapshot of 2026-06-18"));
    }
}
