//! policy-compare: Citadel's IAM policy engine next to cedar-policy and moto's evaluator, in one run.
//!
//! All three engines decide the same 40 requests against the same 5 identity policies x 10 statements
//! (`policy_set.json`, a copy of the shared bench set). The binary first checks every engine's 40 decisions
//! against the expected ones, then times each engine on one thread, then times Citadel alone on a larger
//! "realistic principal" workload, then runs moto's in-process evaluator script as a child process (after
//! the Rust timings, so the two never compete for a core). See README.md for the method and the figures.
//!
//! Usage: `cargo run --release -- [--runs 3] [--secs 2] [--no-moto] [--moto-script PATH] [--dump-cedar PATH]`

mod cedar;
mod realistic;
mod set;

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use std::sync::Arc;

use citadel_policy::{
    CompiledSet, Context, Outcome, Policy, PolicyKind, PolicyRef, PolicySet, Principal, PrincipalKind, Request, SetSpec,
};

/// The bench set, compiled into the binary so that the run needs no path.
const SET_JSON: &str = include_str!("../policy_set.json");
/// Decisions per timed batch.
const BATCH: usize = 100;
/// Upper bound on individually timed decisions per engine.
const SINGLE_MAX: usize = 400_000;

/// Command-line options.
struct Args {
    runs: usize,
    secs: f64,
    moto: bool,
    moto_script: String,
    dump_cedar: Option<String>,
    /// Only run this many realistic decisions and exit, for `valgrind --tool=callgrind`.
    profile: Option<usize>,
    /// Which path `--profile` runs: `evaluate` (uncached `evaluate(&PolicySet)`, the default),
    /// `compiled` (`CompiledSet` with the cache off), `cached` (`CompiledSet` with the cache on,
    /// after one warm-up pass so that every profiled decision is a hit), `wide` (the cache on over
    /// the 20,000-request stream, which mostly misses) or `shared-cached` (the shared 40-request set
    /// through a `CompiledSet` with its cache on: hits after the first pass).
    profile_path: String,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        runs: 3,
        secs: 2.0,
        moto: true,
        moto_script: "/work/shared/bench/policy_eval_moto.py".to_owned(),
        dump_cedar: None,
        profile: None,
        profile_path: "evaluate".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => out.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--secs" => out.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--no-moto" => out.moto = false,
            "--moto-script" => out.moto_script = value()?,
            "--dump-cedar" => out.dump_cedar = Some(value()?),
            "--profile" => out.profile = Some(value()?.parse().map_err(|e| format!("--profile: {e}"))?),
            "--profile-path" => out.profile_path = value()?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(out)
}

/// Decision labels as the bench set spells them.
fn label(code: u8) -> &'static str {
    match code {
        0 => "Allow",
        1 => "Deny",
        _ => "ImplicitDeny",
    }
}

/// Request `i` of the shared set, with its prebuilt context, as the benchmark principal.
fn shared_request<'a>(
    set: &'a set::BenchSet,
    contexts: &'a [Context],
    principal: Principal<'a>,
    i: usize,
) -> Request<'a> {
    let r = &set.requests[i];
    Request {
        principal,
        action: &r.action,
        resource: Some(&r.resource),
        resource_account: None,
        context: &contexts[i],
    }
}

/// The lower-cased service prefix of an IAM action (`s3` for `s3:GetObject`).
fn service_prefix(action: &str) -> String {
    action.split_once(':').map_or(action, |(p, _)| p).to_ascii_lowercase()
}

fn citadel_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Allowed => 0,
        Outcome::ExplicitDeny => 1,
        Outcome::ImplicitDeny => 2,
    }
}

/// One engine's timing.
#[derive(Clone, Debug)]
struct Timing {
    decisions: u64,
    mean_ns: f64,
    p50_ns: f64,
    p99_ns: f64,
    batch_p50_ns: f64,
    batch_p99_ns: f64,
    timer_overhead_ns: f64,
    /// On-CPU time of the batched pass per decision (from /proc/thread-self/schedstat), NaN if unavailable.
    cpu_mean_ns: f64,
    /// Share of the batched pass's wall time the thread spent waiting for a core.
    wait_share: f64,
}

impl Timing {
    fn per_second(&self) -> f64 {
        1e9 / self.mean_ns
    }
}

/// This thread's (on-CPU ns, run-queue wait ns) from the scheduler statistics, if the kernel exposes them.
/// The machine is shared, so wall time alone would count the time other processes held the core.
fn schedstat() -> Option<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some((fields.next()??, fields.next()??))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The cost of one `Instant::now()` pair, as the median of many back-to-back pairs.
fn timer_overhead() -> f64 {
    let mut samples: Vec<f64> = (0..100_000)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            (b - a).as_nanos() as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    percentile(&samples, 0.5)
}

/// Times `decide(i)` over request indices `0..len`, round robin, on the calling thread.
///
/// Mean: total time of `BATCH`-decision batches divided by the decisions (no timer in the loop).
/// p50/p99: a second pass timing every decision with its own `Instant` pair, minus the median timer
/// overhead, so that the percentiles show the spread between requests that batch means would hide.
fn time_engine(len: usize, secs: f64, overhead: f64, mut decide: impl FnMut(usize) -> u8) -> Timing {
    // Warm up and calibrate: enough passes for ~0.2 s or 20 passes.
    let start = Instant::now();
    let mut warm = 0usize;
    while warm < 20 * len || start.elapsed() < Duration::from_millis(200) {
        black_box(decide(warm % len));
        warm += 1;
    }
    let per_decision = start.elapsed().as_secs_f64() / warm as f64;
    let batches = ((secs / per_decision) as usize / BATCH).max(100);

    let mut batch_ns = Vec::with_capacity(batches);
    let mut index = 0usize;
    let mut total = Duration::ZERO;
    let sched_before = schedstat();
    for _ in 0..batches {
        let t0 = Instant::now();
        for _ in 0..BATCH {
            black_box(decide(black_box(index)));
            index += 1;
            if index == len {
                index = 0;
            }
        }
        let elapsed = t0.elapsed();
        total += elapsed;
        batch_ns.push(elapsed.as_nanos() as f64 / BATCH as f64);
    }
    let sched_after = schedstat();
    let decisions = (batches * BATCH) as u64;
    let (cpu_mean_ns, wait_share) = match (sched_before, sched_after) {
        (Some((run0, wait0)), Some((run1, wait1))) => (
            (run1 - run0) / decisions as f64,
            (wait1 - wait0) / total.as_nanos() as f64,
        ),
        _ => (f64::NAN, f64::NAN),
    };
    batch_ns.sort_by(f64::total_cmp);

    let singles = (decisions as usize).min(SINGLE_MAX);
    let mut single_ns = Vec::with_capacity(singles);
    for i in 0..singles {
        let t0 = Instant::now();
        black_box(decide(black_box(i % len)));
        let t1 = Instant::now();
        single_ns.push(((t1 - t0).as_nanos() as f64 - overhead).max(0.0));
    }
    single_ns.sort_by(f64::total_cmp);

    Timing {
        decisions,
        mean_ns: total.as_nanos() as f64 / decisions as f64,
        p50_ns: percentile(&single_ns, 0.5),
        p99_ns: percentile(&single_ns, 0.99),
        batch_p50_ns: percentile(&batch_ns, 0.5),
        batch_p99_ns: percentile(&batch_ns, 0.99),
        timer_overhead_ns: overhead,
        cpu_mean_ns,
        wait_share,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "?".to_owned(), |s| s.trim().to_owned())
}

/// moto's figures from one run of its script.
#[derive(Clone, Debug, Default)]
struct Moto {
    as_moto: f64,
    preparsed: f64,
    with_ctx: f64,
    exact_as_moto: usize,
    exact_with_ctx: usize,
    outcome_as_moto: usize,
}

fn run_moto(script: &str) -> Result<Moto, String> {
    let output = Command::new("python3")
        .arg(script)
        .args(["--n", "10000", "--repeat", "3", "--json", "--policy-set"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policy_set.json"))
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "moto script failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let value: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| format!("moto output: {e}"))?;
    let dps = |mode: &str| value["modes"][mode]["decisions_per_s"].as_f64().unwrap_or(f64::NAN);
    let rows = value["per_request"].as_array().cloned().unwrap_or_default();
    let count = |f: &dyn Fn(&serde_json::Value) -> bool| rows.iter().filter(|r| f(r)).count();
    Ok(Moto {
        as_moto: dps("as-moto"),
        preparsed: dps("preparsed"),
        with_ctx: dps("with-ctx"),
        exact_as_moto: count(&|r| r["as-moto"] == r["aws_expected"]),
        exact_with_ctx: count(&|r| r["with-ctx"] == r["aws_expected"]),
        outcome_as_moto: count(&|r| (r["as-moto"] == "Allow") == (r["aws_expected"] == "Allow")),
    })
}

/// Everything one run measured.
#[derive(Clone, Debug)]
struct Run {
    load_before: String,
    load_after: String,
    citadel: Timing,
    citadel_cached: Timing,
    cedar: Timing,
    cedar_build: Timing,
    cedar_sliced: Timing,
    cedar_trivial: Timing,
    realistic: Timing,
    realistic_uncached: Timing,
    realistic_cached: Timing,
    realistic_cached_wide: Timing,
    realistic_uncached_wide: Timing,
    realistic_cached_clock: Timing,
    realistic_uncached_clock: Timing,
    realistic_mix: [usize; 3],
    moto: Option<Moto>,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let args = args()?;
    let set = set::load(SET_JSON)?;
    let n = set.requests.len();

    // Citadel: parse once, build the contexts once; a Request is a borrowed struct built per decision.
    let policies: Vec<(String, Policy)> = set
        .policies
        .iter()
        .map(|p| {
            let text = serde_json::to_string(&p.document).map_err(|e| e.to_string())?;
            let policy = Policy::parse(&text, PolicyKind::Identity).map_err(|e| format!("{}: {e}", p.name))?;
            Ok((p.name.clone(), policy))
        })
        .collect::<Result<_, String>>()?;
    let citadel_set = PolicySet {
        identity: policies.iter().map(|(id, policy)| PolicyRef { id, policy }).collect(),
        ..PolicySet::default()
    };
    let contexts: Vec<Context> = set
        .requests
        .iter()
        .map(|r| {
            let mut context = Context::new();
            for (k, v) in &r.context {
                context.insert(k, v.as_str());
            }
            context
        })
        .collect();
    let principal_arn = format!("arn:aws:iam::{}:user/bench", set.account);
    let principal = Principal::new(&principal_arn, &set.account, PrincipalKind::User);
    let citadel_decide = |i: usize| -> u8 {
        citadel_code(citadel_policy::evaluate(&shared_request(&set, &contexts, principal, i), &citadel_set).outcome)
    };

    // The same 5 policies as a CompiledSet with its decision cache on: what a service keeps per
    // principal. The 40 requests repeat round robin, so after the first pass every decision is a hit.
    let shared_compiled = CompiledSet::new(SetSpec {
        identity: policies
            .iter()
            .map(|(id, policy)| (id.clone(), Arc::new(policy.clone())))
            .collect(),
        ..SetSpec::default()
    });
    let shared_cached_decide = |i: usize| -> u8 {
        citadel_code(
            shared_compiled
                .evaluate(&shared_request(&set, &contexts, principal, i), None)
                .outcome,
        )
    };

    // Cedar: translate, build the entity store and the 40 requests once.
    let translation = cedar::translate(&set)?;
    if let Some(path) = &args.dump_cedar {
        std::fs::write(path, translation.text()).map_err(|e| format!("{path}: {e}"))?;
    }
    let cedar_set = translation.policy_set()?;
    let actions: Vec<&str> = set.requests.iter().map(|r| r.action.as_str()).collect();
    let resources: Vec<&str> = set.requests.iter().map(|r| r.resource.as_str()).collect();
    let entities = cedar::entities(&translation, &actions, &resources)?;
    let cedar_requests: Vec<cedar_policy::Request> =
        set.requests.iter().map(cedar::request).collect::<Result<_, String>>()?;
    let authorizer = cedar_policy::Authorizer::new();
    // Cedar with the policy set sliced by the action's service prefix (looked up per decision).
    let mut slices: std::collections::HashMap<String, cedar_policy::PolicySet> = std::collections::HashMap::new();
    for r in &set.requests {
        let prefix = service_prefix(&r.action);
        if let std::collections::hash_map::Entry::Vacant(entry) = slices.entry(prefix) {
            let slice = translation.slice(entry.key())?;
            entry.insert(slice);
        }
    }
    let empty_slice = cedar_policy::PolicySet::new();
    let prefixes: Vec<String> = set.requests.iter().map(|r| service_prefix(&r.action)).collect();
    // The per-call floor: one policy that permits everything.
    let trivial: cedar_policy::PolicySet = "permit (principal, action, resource);"
        .parse()
        .map_err(|e| format!("trivial policy: {e}"))?;
    let cedar_code = |response: &cedar_policy::Response| -> u8 {
        match response.decision() {
            cedar_policy::Decision::Allow => 0,
            // A Deny with a determining policy is a satisfied forbid; without one it is the default deny.
            cedar_policy::Decision::Deny if response.diagnostics().reason().next().is_some() => 1,
            cedar_policy::Decision::Deny => 2,
        }
    };
    let cedar_decide =
        |i: usize| -> u8 { cedar_code(&authorizer.is_authorized(&cedar_requests[i], &cedar_set, &entities)) };
    let cedar_sliced_decide = |i: usize| -> u8 {
        let slice = slices.get(prefixes[i].as_str()).unwrap_or(&empty_slice);
        cedar_code(&authorizer.is_authorized(&cedar_requests[i], slice, &entities))
    };
    let cedar_trivial_decide =
        |i: usize| -> u8 { cedar_code(&authorizer.is_authorized(&cedar_requests[i], &trivial, &entities)) };
    // The same, building the Cedar Request and Context from the raw pairs per decision.
    let cedar_build_decide = |i: usize| -> u8 {
        match cedar::request(&set.requests[i]) {
            Ok(request) => cedar_code(&authorizer.is_authorized(&request, &cedar_set, &entities)),
            Err(_) => 3,
        }
    };

    // Correctness first: all 40 Citadel decisions must match; Cedar's mismatches are reported.
    println!("## Decisions on the 40 requests\n");
    println!("| # | action | resource | expected | Citadel | Cedar |");
    println!("|---|---|---|---|---|---|");
    let mut citadel_ok = 0;
    let mut cedar_ok = 0;
    let mut cedar_errors = 0;
    let mut sliced_ok = 0;
    for (i, r) in set.requests.iter().enumerate() {
        let c = label(citadel_decide(i));
        let response = authorizer.is_authorized(&cedar_requests[i], &cedar_set, &entities);
        cedar_errors += response.diagnostics().errors().count();
        let d = label(cedar_code(&response));
        citadel_ok += usize::from(c == r.expected);
        cedar_ok += usize::from(d == r.expected);
        sliced_ok += usize::from(label(cedar_sliced_decide(i)) == r.expected);
        let flag = |x: &str| {
            if x == r.expected {
                x.to_owned()
            } else {
                format!("**{x}**")
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            i + 1,
            r.action,
            r.resource,
            r.expected,
            flag(c),
            flag(d)
        );
    }
    println!();
    println!(
        "Citadel: {citadel_ok}/{n} equal expected. Cedar: {cedar_ok}/{n} equal expected, {cedar_errors} evaluation \
         errors; sliced Cedar: {sliced_ok}/{n} equal expected."
    );
    let mut slice_sizes: Vec<(String, usize)> = slices.iter().map(|(k, v)| (k.clone(), v.policies().count())).collect();
    slice_sizes.sort();
    println!("Cedar slices (service, policies): {slice_sizes:?}");
    println!(
        "Cedar translation: {} policies, {} action groups, {} literal actions, {} statements not translated {:?}",
        translation.policies.len(),
        translation.groups.len(),
        translation.literal_actions.len(),
        translation.unfaithful.len(),
        translation.unfaithful
    );
    if citadel_ok != n {
        return Err("Citadel decisions differ from the expected ones; not timing".into());
    }
    for pass in 0..2 {
        for i in 0..n {
            if shared_cached_decide(i) != citadel_decide(i) {
                return Err(format!(
                    "shared request {i}, pass {pass}: CompiledSet differs from evaluate"
                ));
            }
        }
    }

    // Realistic principal: 10 x 10 statements, 3 conditions each, 1,000 requests.
    let mut rng = realistic::Rng::new(0x00C1_7ADE);
    let real_policies: Vec<(String, Policy)> = realistic::policies(&mut rng)
        .into_iter()
        .map(|(name, text)| {
            let policy = Policy::parse(&text, PolicyKind::Identity).map_err(|e| format!("{name}: {e}"))?;
            Ok((name, policy))
        })
        .collect::<Result<_, String>>()?;
    let real_set = PolicySet {
        identity: real_policies
            .iter()
            .map(|(id, policy)| PolicyRef { id, policy })
            .collect(),
        ..PolicySet::default()
    };
    let real_requests = realistic::requests(&mut rng, 1000);
    let real_contexts: Vec<Context> = real_requests
        .iter()
        .map(|r| {
            let mut context = Context::new();
            for (k, v) in &r.context {
                context.insert(k, v.as_str());
            }
            context
        })
        .collect();
    let real_arn = format!("arn:aws:iam::{}:user/bench", realistic::account());
    let real_principal = Principal::new(&real_arn, realistic::account(), PrincipalKind::User);
    let real_decide = |i: usize| -> u8 {
        let r = &real_requests[i];
        let request = Request {
            principal: real_principal,
            action: &r.action,
            resource: Some(&r.resource),
            resource_account: None,
            context: &real_contexts[i],
        };
        citadel_code(citadel_policy::evaluate(&request, &real_set).outcome)
    };
    // The same policies compiled once into a CompiledSet (what a service keeps per principal).
    let compiled = |capacity: usize| {
        CompiledSet::new(SetSpec {
            identity: real_policies
                .iter()
                .map(|(id, policy)| (id.clone(), Arc::new(policy.clone())))
                .collect(),
            cache_capacity: capacity,
            ..SetSpec::default()
        })
    };
    let uncached_set = compiled(0);
    let cached_set = compiled(citadel_policy::DEFAULT_CACHE_CAPACITY);
    let compiled_decide = |set: &CompiledSet, r: &realistic::GenRequest, context: &Context| -> u8 {
        let request = Request {
            principal: real_principal,
            action: &r.action,
            resource: Some(&r.resource),
            resource_account: None,
            context,
        };
        citadel_code(set.evaluate(&request, None).outcome)
    };
    let distinct = |requests: &[realistic::GenRequest]| {
        let mut seen = std::collections::HashSet::new();
        for r in requests {
            let mut pairs = r.context.clone();
            pairs.sort();
            seen.insert((r.action.clone(), r.resource.clone(), pairs));
        }
        seen.len()
    };
    // A wider stream: 20,000 generated requests, more than the cache holds.
    let mut wide_rng = realistic::Rng::new(0x0057_17EA);
    let wide_requests = realistic::requests(&mut wide_rng, 20_000);
    let wide_contexts: Vec<Context> = wide_requests
        .iter()
        .map(|r| {
            let mut context = Context::new();
            for (k, v) in &r.context {
                context.insert(k, v.as_str());
            }
            context
        })
        .collect();
    // The 1,000 requests again, 20 times over, each copy at its own second of aws:CurrentTime: what a
    // time-dependent set sees in production, where the clock moves; every lookup misses.
    let clock_contexts: Vec<Context> = (0..20_000usize)
        .map(|i| {
            let mut context = real_contexts[i % real_contexts.len()].clone();
            let seconds = i % 60;
            let minutes = i / 60 % 60;
            let hours = i / 3600;
            context.insert(
                "aws:CurrentTime",
                format!("2026-05-01T{:02}:{minutes:02}:{seconds:02}Z", 12 + hours),
            );
            context
        })
        .collect();
    let wide_set = compiled(citadel_policy::DEFAULT_CACHE_CAPACITY);
    let clock_set = compiled(citadel_policy::DEFAULT_CACHE_CAPACITY);
    let uncached_decide = |i: usize| compiled_decide(&uncached_set, &real_requests[i], &real_contexts[i]);
    let cached_decide = |i: usize| compiled_decide(&cached_set, &real_requests[i], &real_contexts[i]);
    let wide_decide = |i: usize| compiled_decide(&wide_set, &wide_requests[i], &wide_contexts[i]);
    let uncached_wide_decide = |i: usize| compiled_decide(&uncached_set, &wide_requests[i], &wide_contexts[i]);
    let clock_decide =
        |i: usize| compiled_decide(&clock_set, &real_requests[i % real_requests.len()], &clock_contexts[i]);
    let uncached_clock_decide = |i: usize| {
        compiled_decide(
            &uncached_set,
            &real_requests[i % real_requests.len()],
            &clock_contexts[i],
        )
    };
    for i in 0..real_requests.len() {
        if uncached_decide(i) != real_decide(i) || cached_decide(i) != real_decide(i) {
            return Err(format!("realistic request {i}: CompiledSet differs from evaluate"));
        }
    }
    println!(
        "realistic streams: {} requests ({} distinct); wide: {} requests ({} distinct); clock: {} contexts, each a distinct second; cache capacity {}; time-dependent set: {}; referenced keys: {:?}",
        real_requests.len(),
        distinct(&real_requests),
        wide_requests.len(),
        distinct(&wide_requests),
        clock_contexts.len(),
        citadel_policy::DEFAULT_CACHE_CAPACITY,
        cached_set.time_dependent(),
        cached_set.referenced_keys().collect::<Vec<_>>()
    );
    if let Some(count) = args.profile {
        let mut mix = [0usize; 3];
        let path = args.profile_path.as_str();
        let (decide, len): (&dyn Fn(usize) -> u8, usize) = match path {
            "evaluate" => (&real_decide, real_requests.len()),
            "compiled" => (&uncached_decide, real_requests.len()),
            "cached" => (&cached_decide, real_requests.len()),
            "wide" => (&wide_decide, wide_requests.len()),
            "shared-cached" => (&shared_cached_decide, n),
            other => return Err(format!("--profile-path: unknown path {other}")),
        };
        for i in 0..count {
            mix[usize::from(decide(i % len))] += 1;
        }
        println!("profiled {count} realistic decisions ({path}): {mix:?}");
        return Ok(());
    }
    let mut realistic_mix = [0usize; 3];
    for i in 0..real_requests.len() {
        realistic_mix[usize::from(real_decide(i))] += 1;
    }

    let overhead = timer_overhead();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nnproc {cpus}; timer overhead {overhead:.0} ns per Instant pair; {} runs\n",
        args.runs
    );

    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let load_before = loadavg();
        let citadel = time_engine(n, args.secs, overhead, citadel_decide);
        let citadel_cached = time_engine(n, args.secs, overhead, shared_cached_decide);
        let cedar = time_engine(n, args.secs, overhead, cedar_decide);
        let cedar_build = time_engine(n, args.secs, overhead, cedar_build_decide);
        let cedar_sliced = time_engine(n, args.secs, overhead, cedar_sliced_decide);
        let cedar_trivial = time_engine(n, args.secs, overhead, cedar_trivial_decide);
        let realistic = time_engine(real_requests.len(), args.secs, overhead, real_decide);
        let realistic_uncached = time_engine(real_requests.len(), args.secs, overhead, uncached_decide);
        let realistic_cached = time_engine(real_requests.len(), args.secs, overhead, cached_decide);
        let realistic_cached_wide = time_engine(wide_requests.len(), args.secs, overhead, wide_decide);
        let realistic_uncached_wide = time_engine(wide_requests.len(), args.secs, overhead, uncached_wide_decide);
        let realistic_cached_clock = time_engine(clock_contexts.len(), args.secs, overhead, clock_decide);
        let realistic_uncached_clock = time_engine(clock_contexts.len(), args.secs, overhead, uncached_clock_decide);
        let moto = if args.moto {
            Some(run_moto(&args.moto_script)?)
        } else {
            None
        };
        let load_after = loadavg();
        let r = Run {
            load_before,
            load_after,
            citadel,
            citadel_cached,
            cedar,
            cedar_build,
            cedar_sliced,
            cedar_trivial,
            realistic,
            realistic_uncached,
            realistic_cached,
            realistic_cached_wide,
            realistic_uncached_wide,
            realistic_cached_clock,
            realistic_uncached_clock,
            realistic_mix,
            moto,
        };
        println!("### Run {run}\n");
        print_run(&r);
        runs.push(r);
    }
    for (name, set) in [
        ("shared set, 40", &shared_compiled),
        ("cache on, 1,000", &cached_set),
        ("cache on, 20,000", &wide_set),
        ("clock moves", &clock_set),
    ] {
        let (hits, misses) = set.cache_stats();
        println!(
            "cache hits/misses ({name}): {hits} / {misses} ({:.1}% hits)",
            100.0 * hits as f64 / (hits + misses).max(1) as f64
        );
    }
    println!();
    // Each figure's median over the runs (each engine's mean, p50, p99 separately; ratios from the medians),
    // so that one run disturbed by another process on the shared machine does not decide the result.
    if runs.len() > 1 {
        println!("### Median of {} runs (per figure)\n", runs.len());
        print_run(&median_run(&runs));
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn median_timing(timings: &[&Timing]) -> Timing {
    let m = |f: fn(&Timing) -> f64| median(timings.iter().map(|t| f(t)).collect());
    Timing {
        decisions: timings.iter().map(|t| t.decisions).sum(),
        mean_ns: m(|t| t.mean_ns),
        p50_ns: m(|t| t.p50_ns),
        p99_ns: m(|t| t.p99_ns),
        batch_p50_ns: m(|t| t.batch_p50_ns),
        batch_p99_ns: m(|t| t.batch_p99_ns),
        timer_overhead_ns: m(|t| t.timer_overhead_ns),
        cpu_mean_ns: m(|t| t.cpu_mean_ns),
        wait_share: m(|t| t.wait_share),
    }
}

/// A run made of each figure's median over `runs` (decision counts are summed).
fn median_run(runs: &[Run]) -> Run {
    let pick = |f: fn(&Run) -> &Timing| median_timing(&runs.iter().map(f).collect::<Vec<_>>());
    let motos: Vec<&Moto> = runs.iter().filter_map(|r| r.moto.as_ref()).collect();
    let moto = (!motos.is_empty()).then(|| {
        let m = |f: fn(&Moto) -> f64| median(motos.iter().map(|x| f(x)).collect());
        Moto {
            as_moto: m(|x| x.as_moto),
            preparsed: m(|x| x.preparsed),
            with_ctx: m(|x| x.with_ctx),
            ..motos[0].clone()
        }
    });
    Run {
        load_before: runs.first().map(|r| r.load_before.clone()).unwrap_or_default(),
        load_after: runs.last().map(|r| r.load_after.clone()).unwrap_or_default(),
        citadel: pick(|r| &r.citadel),
        citadel_cached: pick(|r| &r.citadel_cached),
        cedar: pick(|r| &r.cedar),
        cedar_build: pick(|r| &r.cedar_build),
        cedar_sliced: pick(|r| &r.cedar_sliced),
        cedar_trivial: pick(|r| &r.cedar_trivial),
        realistic: pick(|r| &r.realistic),
        realistic_uncached: pick(|r| &r.realistic_uncached),
        realistic_cached: pick(|r| &r.realistic_cached),
        realistic_cached_wide: pick(|r| &r.realistic_cached_wide),
        realistic_uncached_wide: pick(|r| &r.realistic_uncached_wide),
        realistic_cached_clock: pick(|r| &r.realistic_cached_clock),
        realistic_uncached_clock: pick(|r| &r.realistic_uncached_clock),
        realistic_mix: runs.first().map(|r| r.realistic_mix).unwrap_or_default(),
        moto,
    }
}

fn print_run(r: &Run) {
    println!("loadavg before: {} / after: {}\n", r.load_before, r.load_after);
    let moto_dps = r.moto.as_ref().map(|m| m.preparsed);
    let cedar_dps = r.cedar.per_second();
    let ratio = |dps: f64, base: Option<f64>| match base {
        Some(b) if b > 0.0 => format!("{:.1}x", dps / b),
        _ => "n/a".to_owned(),
    };
    println!(
        "| engine | mean ns (wall) | mean ns (on-CPU) | p50 ns | p99 ns | decisions/s (1 core, wall) | vs moto (preparsed) | vs cedar |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let row = |name: &str, t: &Timing| {
        let dps = t.per_second();
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |",
            t.mean_ns,
            t.cpu_mean_ns,
            t.p50_ns,
            t.p99_ns,
            dps,
            ratio(dps, moto_dps),
            ratio(dps, Some(cedar_dps))
        );
    };
    row("Citadel evaluate (40-request set)", &r.citadel);
    row("Citadel CompiledSet, cache on (40-request set)", &r.citadel_cached);
    row("cedar-policy is_authorized (prebuilt Request)", &r.cedar);
    row("cedar-policy Request build + is_authorized", &r.cedar_build);
    row("cedar-policy is_authorized, set sliced by service", &r.cedar_sliced);
    row("cedar-policy is_authorized, 1 trivial policy (floor)", &r.cedar_trivial);
    if let Some(m) = &r.moto {
        for (name, dps) in [
            ("moto as-moto", m.as_moto),
            ("moto preparsed", m.preparsed),
            ("moto with-ctx", m.with_ctx),
        ] {
            println!(
                "| {name} | {:.0} | n/a | n/a | n/a | {:.0} | {} | {} |",
                1e9 / dps,
                dps,
                ratio(dps, moto_dps),
                ratio(dps, Some(cedar_dps))
            );
        }
    }
    row(
        "Citadel realistic (10x10, 3 conditions, 1,000 requests), evaluate(PolicySet)",
        &r.realistic,
    );
    row("Citadel realistic, CompiledSet, cache off", &r.realistic_uncached);
    row(
        "Citadel realistic, CompiledSet, cache on (1,000-request stream)",
        &r.realistic_cached,
    );
    row(
        "Citadel realistic, CompiledSet, cache on (20,000-request stream)",
        &r.realistic_cached_wide,
    );
    row(
        "Citadel realistic, CompiledSet, cache off, same 20,000-request stream",
        &r.realistic_uncached_wide,
    );
    row(
        "Citadel realistic, CompiledSet, cache on, clock moves (every lookup misses)",
        &r.realistic_cached_clock,
    );
    row(
        "Citadel realistic, CompiledSet, cache off, same clock stream",
        &r.realistic_uncached_clock,
    );
    println!();
    for (name, t) in [
        ("citadel", &r.citadel),
        ("citadel_cached", &r.citadel_cached),
        ("cedar", &r.cedar),
        ("cedar_build", &r.cedar_build),
        ("cedar_sliced", &r.cedar_sliced),
        ("cedar_trivial", &r.cedar_trivial),
        ("realistic", &r.realistic),
        ("realistic_uncached", &r.realistic_uncached),
        ("realistic_cached", &r.realistic_cached),
        ("realistic_cached_wide", &r.realistic_cached_wide),
        ("realistic_uncached_wide", &r.realistic_uncached_wide),
        ("realistic_cached_clock", &r.realistic_cached_clock),
        ("realistic_uncached_clock", &r.realistic_uncached_clock),
    ] {
        println!(
            "{name}: {} decisions timed in batches of {BATCH}; batch-mean p50 {:.0} ns, p99 {:.0} ns; \
             single p50/p99 corrected by {:.0} ns; waited for a core {:.0}% of the batched pass",
            t.decisions,
            t.batch_p50_ns,
            t.batch_p99_ns,
            t.timer_overhead_ns,
            t.wait_share * 100.0
        );
    }
    println!(
        "realistic mix: {} Allow / {} Deny / {} ImplicitDeny",
        r.realistic_mix[0], r.realistic_mix[1], r.realistic_mix[2]
    );
    if let Some(m) = &r.moto {
        println!(
            "moto: as-moto {}/40 exact ({}/40 same allow/deny outcome), with-ctx {}/40 exact",
            m.exact_as_moto, m.outcome_as_moto, m.exact_with_ctx
        );
    }
    println!();
}
