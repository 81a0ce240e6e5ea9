//! What a run's Karpenter nodes cost: the types (the twin's `cost` module computes them from a
//! price snapshot).

/// One node's life: its VM size and when it existed, in seconds on some clock.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeSpan {
    /// `node.kubernetes.io/instance-type` (`None` when the node never said).
    pub size: Option<String>,
    /// `topology.kubernetes.io/region` (`None` when the node never said).
    pub region: Option<String>,
    pub from: f64,
    pub until: f64,
    /// False when it still existed at the end (`until` is then the end of the record).
    pub ended: bool,
}

/// The nodes of one size and what they cost.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SizeCost {
    /// The VM size, or `unknown size`; `<size> in <region>` outside the snapshot's region.
    pub size: String,
    pub nodes: u64,
    pub node_hours: f64,
    /// USD per hour from the snapshot, `None` when it has no price for this size.
    pub usd_per_hour: Option<f64>,
    /// False when the price is proportional to vCPU rather than quoted from the snapshot.
    pub price_quoted: bool,
    /// `node_hours × usd_per_hour`.
    pub usd: Option<f64>,
}

/// Node-hours and cost of a set of nodes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CostEstimate {
    /// Per size, largest cost first, then by name.
    pub sizes: Vec<SizeCost>,
    pub node_hours: f64,
    /// The sum over the priced sizes.
    pub total_usd: f64,
    /// Sizes without a price: their node-hours are not in `total_usd`.
    pub unpriced: Vec<String>,
    /// Nodes still there when the record ended (counted until then).
    pub still_running: u64,
    /// The snapshot's region.
    pub price_region: &'static str,
    /// The snapshot's date.
    pub price_date: &'static str,
    pub price_source: &'static str,
}

impl SizeCost {
    /// `Standard_D2als_v6: 3 nodes, 0.250 node-h × $0.0804/h = $0.0201`, or `… no price for X`
    /// (`price_region`: the price snapshot's region).
    pub fn describe(&self, price_region: &str) -> String {
        let head = format!(
            "{}: {} node{}, {:.3} node-h",
            self.size,
            self.nodes,
            if self.nodes == 1 { "" } else { "s" },
            self.node_hours
        );
        match (self.usd_per_hour, self.usd) {
            (Some(price), Some(usd)) => format!(
                "{head} × ${price}/h = ${usd:.4}{}",
                if self.price_quoted {
                    ""
                } else {
                    " (price proportional to vCPU, not quoted)"
                }
            ),
            _ => format!(
                "{head}, no price for {} in the {} snapshot",
                self.size, price_region
            ),
        }
    }
}

impl NodeSpan {
    /// A node of `size` in `region` from `from` to `until` (ended).
    pub fn ended(size: &str, region: &str, from: f64, until: f64) -> Self {
        NodeSpan {
            size: Some(size.to_owned()),
            region: Some(region.to_owned()),
            from,
            until,
            ended: true,
        }
    }
}

impl CostEstimate {
    /// `$0.0603 for 0.750 node-h (3 nodes)`, with what is left out said.
    pub fn describe_total(&self) -> String {
        let nodes: u64 = self.sizes.iter().map(|s| s.nodes).sum();
        let mut text = format!(
            "${:.4} for {:.3} node-h ({nodes} node{})",
            self.total_usd,
            self.node_hours,
            if nodes == 1 { "" } else { "s" }
        );
        if !self.unpriced.is_empty() {
            text.push_str(&format!(
                "; without {} (no price)",
                self.unpriced.join(", ")
            ));
        }
        if self.still_running > 0 {
            text.push_str(&format!(
                "; {} still running at the end, counted until then",
                self.still_running
            ));
        }
        text
    }

    /// `prices: eastus snapshot of 2026-06-18 (…)`.
    pub fn describe_prices(&self) -> String {
        format!(
            "prices: {} snapshot of {} ({})",
            self.price_region, self.price_date, self.price_source
        )
    }
}
