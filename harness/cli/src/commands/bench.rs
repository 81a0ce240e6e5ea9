//! `edw bench`: the suite's own speed, each figure next to its reference in the same run on
//! the same machine: producer and consumer throughput against Azurite's ceiling and the
//! sample's patterns, observation latency, the full local flow, the twin, and the harness's
//! overhead while it waits. Prints a table and writes `bench.md`.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use tokio_util::sync::CancellationToken;

use crate::args::{BenchArgs, GlobalArgs};
use crate::{exit, session, Failure};
use edw_engine::observe::{eventually, Expect, Recorder};
use edw_engine::runner::{run as run_scenario, Context, RunOptions, Step};
use edw_engine::steps;
use edw_engine::storage::{Storage, StorageTarget};
use edw_engine::target::{Target, TargetKind};
use edw_engine::workload::{
    consume, poison_queue_name, produce, ConsumerOptions, ProducerPlan, StopWhen,
};
use edw_model::naming::{run_queue_name, run_table_name};

struct Row {
    figure: String,
    value: String,
    reference: String,
    ratio: String,
}

fn row(figure: &str, value: String, reference: String, ratio: String) -> Row {
    Row {
        figure: figure.to_owned(),
        value,
        reference,
        ratio,
    }
}

/// A figure against its goal, saying plainly whether the goal was met.
fn against_goal(text: String, met: bool) -> String {
    if met {
        format!("{text}: met")
    } else {
        format!("{text}: MISSED")
    }
}

/// How `ours` compares with `theirs` (rates): "2.5x faster", "1.4x slower", or "about the same"
/// within 5 %.
fn compared(ours: f64, theirs: f64) -> String {
    let ratio = ours / theirs.max(1e-9);
    if ratio >= 1.05 {
        format!("{ratio:.1}x faster")
    } else if ratio <= 0.95 {
        format!("{:.1}x slower", 1.0 / ratio.max(1e-9))
    } else {
        "about the same".to_owned()
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

pub async fn run(
    global: &GlobalArgs,
    args: &BenchArgs,
    cancel: &CancellationToken,
) -> Result<u8, Failure> {
    let config = session::load_config(global)?;
    let n = args.messages;
    let mut rows = Vec::new();
    eprintln!("starting the local target (embedded Azurite + the twin)…");
    let target = Arc::new(
        Target::open(TargetKind::Local, &config)
            .await
            .map_err(Failure::target)?,
    );
    // Observation latency first, while the target is fresh.
    eprintln!("measuring observation latency…");
    let (median, p95) = observation_latency(&target, &config)
        .await
        .map_err(Failure::environment)?;

    // Throughput on Azurite instances of their own: a queue service that has deleted a few
    // thousand messages stalls during its sweep (azurite-notes), which would skew the figures.
    let fresh = || async {
        let azurite = edw_engine::azurite::Azurite::start_with(
            &edw_engine::azurite::AzuriteOptions::default(),
        )
        .await?;
        let storage = Storage::connect(&azurite.storage_target())?;
        Ok::<_, anyhow::Error>((azurite, storage))
    };
    let (azurite, storage) = fresh().await.map_err(Failure::environment)?;

    // 1. Azurite's ceiling: the fastest put stream this benchmark can drive (64 in flight,
    // tiny messages), then the producer, then the sample's pattern (a new client per message).
    eprintln!("measuring Azurite's put ceiling…");
    // The best of several concurrency levels: the fastest stream this benchmark can drive.
    let mut ceiling: f64 = 0.0;
    for in_flight in [16, 32, 64] {
        ceiling = ceiling.max(
            put_rate(&storage, n, in_flight)
                .await
                .map_err(Failure::environment)?,
        );
    }
    eprintln!("measuring the producer…");
    let queue = storage.queue(&run_queue_name("bench"));
    queue.create().await.map_err(Failure::environment)?;
    let produced = produce(&queue, &ProducerPlan::burst(n, 32), cancel)
        .await
        .map_err(Failure::environment)?;
    let producer = produced.rate();
    rows.push(row(
        "producer into Azurite (32 in flight)",
        format!("{producer:.0} msg/s"),
        format!("ceiling {ceiling:.0} msg/s"),
        {
            let share = 100.0 * producer / ceiling.max(producer);
            against_goal(
                format!("{share:.0}% of the ceiling (goal ≥ 90%)"),
                share >= 90.0,
            )
        },
    ));
    // Before/after of our transport: the same producer with the SDK's own transport and with
    // ours, each on a fresh Azurite.
    eprintln!("measuring the producer with the SDK's default transport, then ours…");
    let mut transport_rates = Vec::new();
    for sdk in [true, false] {
        let azurite = edw_engine::azurite::Azurite::start_with(
            &edw_engine::azurite::AzuriteOptions::default(),
        )
        .await
        .map_err(Failure::environment)?;
        let storage = if sdk {
            Storage::connect_with_sdk_transport(&azurite.storage_target())
        } else {
            Storage::connect(&azurite.storage_target())
        }
        .map_err(Failure::environment)?;
        let queue = storage.queue(&run_queue_name("bench"));
        queue.create().await.map_err(Failure::environment)?;
        let rate = produce(&queue, &ProducerPlan::burst(n, 32), cancel)
            .await
            .map_err(Failure::environment)?
            .rate();
        transport_rates.push(rate);
        azurite.stop().await;
    }
    let (before, after) = (transport_rates[0], transport_rates[1]);
    rows.push(row(
        "producer: SDK's default transport (before) vs ours (after), fresh Azurites",
        format!("{before:.0} → {after:.0} msg/s"),
        "connection reuse".into(),
        format!("ours is {}", compared(after, before)),
    ));
    eprintln!("measuring the sample's producer pattern…");
    let sample = sample_pattern_rate(&storage, 100.min(n))
        .await
        .map_err(Failure::environment)?;
    rows.push(row(
        "sample's pattern (new client per message, sequential)",
        format!("{sample:.0} msg/s"),
        format!("producer {producer:.0} msg/s"),
        format!("producer is {}", compared(producer, sample)),
    ));

    // 2. Consumer drain per worker and for N workers, each from a fresh backlog of n.
    let mut drained = Vec::new();
    for workers in [1usize, 4, 8] {
        eprintln!("measuring the consumer with {workers} worker(s)…");
        let (azurite, storage) = fresh().await.map_err(Failure::environment)?;
        let r = drain_rate(&storage, n, workers)
            .await
            .map_err(Failure::environment)?;
        azurite.stop().await;
        drained.push((workers, r));
        rows.push(row(
            &format!("consumer drain, {workers} worker(s), batch 32"),
            format!("{r:.0} msg/s"),
            format!("ceiling {ceiling:.0} msg/s (puts)"),
            format!("{:.0}%", 100.0 * r / ceiling),
        ));
    }
    let _ = queue.delete().await;
    azurite.stop().await;

    // 3. Observation latency: a replica change in the twin to the recorder seeing it.
    rows.push(row(
        "observation latency (twin change → recorder), median",
        format!("{:.0} ms", median * 1e3),
        "goal p95 < 100 ms".into(),
        String::new(),
    ));
    rows.push(row(
        "observation latency, p95",
        format!("{:.0} ms", p95 * 1e3),
        "100 ms".into(),
        against_goal(format!("{:.0}% of the goal", p95 * 1e3), p95 < 0.1),
    ));

    // 4. The full local flow (1,000 messages).
    eprintln!("running the full local flow…");
    let started = Instant::now();
    let scenario = edw_scenarios::burst();
    let mut context = Context::new(target.clone(), config.clone(), scenario.settings.clone());
    let report = run_scenario(&scenario, &mut context, &RunOptions::default(), cancel).await;
    drop(context);
    let flow_seconds = started.elapsed().as_secs_f64();
    rows.push(row(
        "full local flow (edw run, 1,000 messages)",
        format!(
            "{flow_seconds:.1} s ({})",
            if report.passed() { "passed" } else { "FAILED" }
        ),
        "goal < 30 s".into(),
        against_goal(
            format!("{:.0}% of the goal", 100.0 * flow_seconds / 30.0),
            flow_seconds < 30.0,
        ),
    ));
    if let Some(peak) = peak_memory_mib() {
        rows.push(row(
            "peak memory of this process so far",
            format!("{peak:.0} MiB"),
            "goal < 150 MB for the flow".into(),
            against_goal(
                format!("{:.0}% of the goal", 100.0 * peak * 1.048_576 / 150.0),
                peak * 1.048_576 < 150.0,
            ),
        ));
    }

    // 4b. In-cluster load on the twin: Job pods running the real producer, one message in
    // flight each, so that P pods show P times one pod's rate until Azurite's ceiling.
    eprintln!("measuring in-cluster load on the twin (1, 4 and 8 producer pods)…");
    rows.extend(
        in_cluster_rates(&target, &config, n, ceiling, cancel)
            .await
            .map_err(Failure::environment)?,
    );

    // 5. The twin on its virtual clock.
    eprintln!("measuring the twin…");
    let mut times = Vec::new();
    for _ in 0..10 {
        let input = edw_twin::simulate::SimulationInput {
            params: edw_twin::params::TwinParams::default(),
            profile: edw_twin::queue::LoadProfile::burst(30.0, 1000),
            scaled_object: None,
            duration: 330.0,
        };
        let t = Instant::now();
        edw_twin::simulate::simulate(&input).map_err(Failure::environment)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    rows.push(row(
        "twin: worked example, virtual clock (median of 10)",
        format!("{:.1} ms", times[5] * 1e3),
        "goal < 100 ms".into(),
        against_goal(
            format!("{:.0}% of the goal", times[5] * 1e3),
            times[5] < 0.1,
        ),
    ));
    // 6. Overhead while waiting: the recorder watching an idle cluster. On `--idle-on kube`
    // the local target is stopped first, so the process is the harness alone, watching a
    // cluster elsewhere (e.g. `edw twin serve` in another process, or kind).
    let (idle_target, idle_label) = if args.idle_on == "kube" {
        if let Ok(target) = Arc::try_unwrap(target) {
            target.shutdown().await;
        }
        eprintln!("opening the kube target for the idle measurement…");
        let kube = Target::open(TargetKind::Kube, &config)
            .await
            .map_err(Failure::target)?;
        let label = if kube.info().simulated {
            "the kube target (a served twin in another process: the harness alone)".to_owned()
        } else {
            "the kube target (a real cluster)".to_owned()
        };
        (Arc::new(kube), label)
    } else {
        (
            target,
            "the local target (this process also runs the twin and its Azurite client: an upper bound)".to_owned(),
        )
    };
    eprintln!(
        "measuring the harness's overhead while it waits ({:?}) on {idle_label}…",
        args.idle
    );
    let idle = idle_overhead(&idle_target, &config, args.idle).await;
    if let Some((cpu_percent, memory)) = idle {
        rows.push(row(
            &format!(
                "harness while waiting ({:?}) on {idle_label}: CPU",
                args.idle
            ),
            format!("{cpu_percent:.2}% of a core"),
            "goal < 1%".into(),
            against_goal(format!("{cpu_percent:.2}% vs 1%"), cpu_percent < 1.0),
        ));
        rows.push(row(
            "harness while waiting: memory (peak during the wait)",
            format!("{memory:.0} MiB"),
            "goal < 64 MB".into(),
            against_goal(
                format!("{:.0} MB vs 64 MB", memory * 1.048_576),
                memory * 1.048_576 < 64.0,
            ),
        ));
    }
    if let Ok(target) = Arc::try_unwrap(idle_target) {
        target.shutdown().await;
    }

    // 5b. The large scale-out last: the memory it takes stays with the process (the
    // allocator keeps it), which would hide the idle figure above.
    if args.full {
        eprintln!("scaling the twin out to 1,000 nodes / 100,000 pods (virtual clock)…");
        let f = tokio::task::spawn_blocking(|| {
            edw_twin::scale_out::scale_out(100_000, 100).map_err(anyhow::Error::new)
        })
        .await
        .map_err(Failure::environment)?
        .map_err(|e| Failure::environment(e.context("the scale-out")))?;
        rows.push(row(
            &format!(
                "twin: {} nodes / {} pods Running ({:.0} s wall)",
                f.nodes,
                f.running,
                f.wall.as_secs_f64()
            ),
            format!("{:.0} objects/s", f.objects_per_second()),
            "KWOK ~20 objects/s".into(),
            format!("{:.0}x", f.objects_per_second() / 20.0),
        ));
    }

    let mut text = String::new();
    let _ = writeln!(text, "# edw bench\n");
    let _ = writeln!(text, "Machine: {} cores; `{}`; local target (embedded Azurite + the twin); {n} messages per throughput figure.\n", std::thread::available_parallelism().map_or(0, |n| n.get()), std::env::consts::ARCH);
    let _ = writeln!(
        text,
        "| figure | value | reference | ratio |\n|---|---|---|---|"
    );
    for r in &rows {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} |",
            r.figure, r.value, r.reference, r.ratio
        );
    }
    println!("{text}");
    std::fs::create_dir_all(&args.report_dir).map_err(Failure::environment)?;
    let path = args.report_dir.join("bench.md");
    std::fs::write(&path, &text).map_err(Failure::environment)?;
    eprintln!("written to {}", path.display());
    Ok(if report.passed() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

/// One pod's load, then 4 and 8 pods', each as its own Job on one deployment of the sample.
fn load_from_1_pod(ctx: &mut Context) -> edw_engine::runner::StepFuture<'_> {
    in_cluster_load_of(ctx, 1)
}
fn load_from_4_pods(ctx: &mut Context) -> edw_engine::runner::StepFuture<'_> {
    in_cluster_load_of(ctx, 4)
}
fn load_from_8_pods(ctx: &mut Context) -> edw_engine::runner::StepFuture<'_> {
    in_cluster_load_of(ctx, 8)
}
fn in_cluster_load_of(ctx: &mut Context, pods: u64) -> edw_engine::runner::StepFuture<'_> {
    ctx.settings.producer_concurrency = 1;
    ctx.settings.in_cluster_load = Some(edw_model::run::InClusterLoad {
        parallelism: pods,
        rate: None,
    });
    steps::load::load(ctx)
}

/// In-cluster load rates on the twin (real msg/s, from the first pod's first send to the last
/// pod's last, as the pods report them) for 1, 4 and 8 pods, against P × one pod's rate and
/// Azurite's ceiling.
async fn in_cluster_rates(
    target: &Arc<Target>,
    config: &edw_engine::config::Config,
    n: u64,
    ceiling: f64,
    cancel: &CancellationToken,
) -> Result<Vec<Row>, anyhow::Error> {
    let mut scenario = edw_scenarios::burst();
    // Without the ScaledObject: no consumers scale out and share Azurite with the producers.
    let load_at = scenario
        .steps
        .iter()
        .position(|s| s.name.starts_with("deploy: ScaledObject"))
        .ok_or_else(|| anyhow::anyhow!("flow::burst has no ScaledObject step"))?;
    scenario.steps.truncate(load_at);
    let timeout = Duration::from_secs(600);
    scenario.steps.extend([
        Step::new("load: 1 in-cluster pod", timeout, load_from_1_pod),
        Step::new("load: 4 in-cluster pods", timeout, load_from_4_pods),
        Step::new("load: 8 in-cluster pods", timeout, load_from_8_pods),
    ]);
    let settings = edw_model::run::FlowSettings {
        messages: n.max(8),
        ..scenario.settings.clone()
    };
    let mut context = Context::new(target.clone(), config.clone(), settings);
    let report = run_scenario(&scenario, &mut context, &RunOptions::default(), cancel).await;
    let rate_of = |pods: u64| -> Result<(f64, f64), anyhow::Error> {
        let step = report
            .steps
            .iter()
            .find(|s| s.name.starts_with(&format!("load: {pods} in-cluster pod")))
            .ok_or_else(|| anyhow::anyhow!("the {pods}-pod load did not run"))?;
        if step.outcome != edw_model::report::StepStatus::Passed {
            anyhow::bail!(
                "the {pods}-pod in-cluster load did not pass:{} ({})",
                step.status_line().1,
                step.details
                    .iter()
                    .take(12)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        let property = |key: &str| {
            step.properties
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.parse::<f64>().ok())
                .ok_or_else(|| anyhow::anyhow!("the {pods}-pod load reported no {key}"))
        };
        Ok((
            property("producer.per_second")?,
            property("load.in_cluster.sum_of_pod_rates")?,
        ))
    };
    let (one, _) = rate_of(1)?;
    let mut rows = vec![row(
        "in-cluster load on the twin, 1 pod (1 message in flight per pod)",
        format!("{one:.0} msg/s"),
        format!("ceiling {ceiling:.0} msg/s"),
        format!("{:.0}% of the ceiling", 100.0 * one / ceiling),
    )];
    for pods in [4u64, 8] {
        let (together, summed) = rate_of(pods)?;
        let expected = (one * pods as f64).min(ceiling);
        rows.push(row(
            &format!("in-cluster load on the twin, {pods} pods: sum of the pods' rates (first send to last, pods waiting for a node included)"),
            format!("{summed:.0} msg/s ({together:.0} msg/s)"),
            format!("min({pods} × {one:.0}, ceiling {ceiling:.0}) = {expected:.0} msg/s"),
            format!("{:.0}% of it", 100.0 * summed / expected),
        ));
    }
    Ok(rows)
}

async fn put_rate(storage: &Storage, n: u64, in_flight: usize) -> Result<f64, anyhow::Error> {
    use futures::StreamExt;
    let queue = storage.queue(&run_queue_name("ceiling"));
    queue.create().await?;
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|_| queue.send("x"))
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let sent = results.iter().filter(|r| r.is_ok()).count() as u64;
    queue.delete().await?;
    Ok(rate(sent, elapsed))
}

async fn sample_pattern_rate(storage: &Storage, n: u64) -> Result<f64, anyhow::Error> {
    let name = run_queue_name("sample");
    storage.queue(&name).create().await?;
    let target = StorageTarget::development(storage.queue_endpoint(), storage.table_endpoint());
    let started = Instant::now();
    for i in 0..n {
        // A new client for every message, as aqs-producer.py does.
        let client = Storage::connect(&target)?;
        client
            .queue(&name)
            .send(&edw_engine::workload::message_text(
                i + 1,
                time::OffsetDateTime::now_utc(),
            ))
            .await?;
    }
    let elapsed = started.elapsed();
    storage.queue(&name).delete().await?;
    Ok(rate(n, elapsed))
}

async fn drain_rate(storage: &Storage, n: u64, workers: usize) -> Result<f64, anyhow::Error> {
    let queue = storage.queue(&run_queue_name("drain"));
    let poison = storage.queue(&poison_queue_name(queue.name()));
    let table = storage.table(&run_table_name("drain"));
    queue.create().await?;
    poison.create().await?;
    table.create().await?;
    produce(
        &queue,
        &ProducerPlan::burst(n, 32),
        &CancellationToken::new(),
    )
    .await?;
    let options = ConsumerOptions {
        workers,
        batch: 32,
        stop: StopWhen::Empty,
        idle_poll: Duration::from_millis(100),
        ..ConsumerOptions::default()
    };
    let report = consume(&queue, &table, &poison, &options, &CancellationToken::new()).await?;
    for result in [queue.delete().await, poison.delete().await] {
        result?;
    }
    table.delete().await?;
    Ok(report.processed as f64 * 1000.0 / report.elapsed_ms.max(1) as f64)
}

async fn observation_latency(
    target: &Arc<Target>,
    config: &edw_engine::config::Config,
) -> Result<(f64, f64), anyhow::Error> {
    // A namespace of its own, whatever the target: the measurement creates and deletes objects.
    let context = Context::new(
        target.clone(),
        config.clone(),
        edw_engine::runner::FlowSettings::default(),
    )
    .with_footprint(edw_engine::runner::Footprint::OwnNamespace);
    let client = target.client();
    let owner = edw_engine::manifests::Ownership {
        run_id: context.names.run_id.clone(),
        nodepool: None,
    };
    for template in [
        "namespace.yaml",
        "serviceaccount.yaml",
        "consumer-deployment.yaml",
    ] {
        let mut objects = edw_engine::manifests::render(template, &context.template_vars())?;
        edw_engine::manifests::stamp_ownership(&mut objects, &owner);
        edw_engine::manifests::create(&client, &objects).await?;
    }
    let recorder = Recorder::start(
        client.clone(),
        context.subject(),
        Duration::from_secs(5),
        target.clock(),
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &context.names.namespace);
    let mut samples = Vec::new();
    for i in 0..40u64 {
        let replicas = 2 + (i % 2);
        let started = Instant::now();
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        deployments
            .patch(
                &context.names.deployment,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        let expect = Expect::new(format!("desired = {replicas}"), move |o| {
            o.desired == replicas
        })
        .reading(&[edw_model::report::Read::Deployment]);
        // Ten real seconds, in the target's time.
        let within = Duration::from_secs_f64(10.0 * target.time_scale());
        eventually(&recorder, &expect, within)
            .await
            .map_err(|f| anyhow::anyhow!("{f}"))?;
        samples.push(started.elapsed().as_secs_f64());
    }
    recorder.stop();
    let namespace = edw_engine::manifests::Applied {
        api_version: "v1".to_owned(),
        kind: "Namespace".to_owned(),
        namespace: None,
        name: context.names.namespace.clone(),
    };
    let _ = edw_engine::manifests::delete_owned(&client, &namespace, &owner.run_id).await;
    samples.sort_by(f64::total_cmp);
    Ok((
        samples[samples.len() / 2],
        samples[samples.len() * 95 / 100],
    ))
}

async fn idle_overhead(
    target: &Arc<Target>,
    config: &edw_engine::config::Config,
    window: Duration,
) -> Option<(f64, f64)> {
    let context = Context::new(
        target.clone(),
        config.clone(),
        edw_engine::runner::FlowSettings::default(),
    );
    let recorder = Recorder::start(
        target.client(),
        context.subject(),
        Duration::from_secs(1),
        target.clock(),
    );
    // The peak resident size from here on (Linux: writing 5 to clear_refs resets VmHWM), not
    // the earlier figures' peak.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = cpu_seconds()?;
    let wall = Instant::now();
    tokio::time::sleep(window).await;
    let used = cpu_seconds()? - before;
    recorder.stop();
    Some((
        100.0 * used / wall.elapsed().as_secs_f64(),
        peak_memory_mib()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_below_its_goal_says_missed() {
        assert_eq!(
            against_goal("85% of the ceiling (goal ≥ 90%)".into(), false),
            "85% of the ceiling (goal ≥ 90%): MISSED"
        );
        assert!(against_goal("95%".into(), true).ends_with(": met"));
    }

    #[test]
    fn comparisons_say_faster_slower_or_the_same() {
        assert_eq!(compared(250.0, 100.0), "2.5x faster");
        assert_eq!(compared(100.0, 140.0), "1.4x slower");
        assert_eq!(compared(101.0, 100.0), "about the same");
    }
}
