//! Writing the files of a deploy: profiles, recommendations, messages, summary and report, and
//! the profiles kept for the next run.

use super::*;

/// The run's time: the trigger's firing time, else now.
pub(super) fn run_time(ctx: &NodeContext) -> DateTime<FixedOffset> {
    ctx.trigger
        .get("time")
        .and_then(Json::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| chrono::Utc::now().fixed_offset())
}

/// What deploy measures earlier campaigns with: where each campaign input came from, and the
/// transactions.
pub(super) struct Measure {
    pub(super) sources: Vec<outcomes::CampaignSource>,
    pub(super) transactions: Option<RecordBatch>,
}

/// Writes every file into `out_dir` and returns the summary and the POS batches.
pub(super) fn write_outputs(
    cfg: &DeployConfig,
    ctx: &NodeContext,
    campaigns: Vec<RecordBatch>,
    recommendations: Vec<RecordBatch>,
    measure: Measure,
    backtests: backtests::Backtests,
) -> Result<Written, NodeError> {
    let now = run_time(ctx);
    // One role at a time, each branch's tables dropped once concatenated.
    let camp = normalize(&campaigns, &CAMPAIGN_COLUMNS)?;
    drop(campaigns);
    let camp = recipients::unsendable_to_skipped(&camp)?;
    let recs = normalize(&recommendations, &dictionary_text(&RECOMMENDATION_COLUMNS))?;
    drop(recommendations);
    private_files::create_dirs(&cfg.out_dir)?;
    // Staging folders a killed deploy left behind hold partial messages: remove them first. The
    // lock is held until this deploy's own messages are in place.
    let (staging_lock, removed) = staging::lock_and_sweep(&cfg.out_dir)?;
    for dir in removed {
        tracing::info!("removed the leftover staging folder {}", dir.display());
    }

    // --- Profiles ------------------------------------------------------------------------------
    let ids = text(&camp, "customer_id");
    let segs = text(&camp, "segment");
    let send = bools(&camp, "send");
    let clv = floats(&camp, "clv");
    let (skip_reason, spend) = (text(&camp, "skip_reason"), floats(&camp, "total_spend"));
    let (orders, p_purchase) = (ints(&camp, "orders"), floats(&camp, "p_purchase"));
    let groups = text(&camp, "group");
    let mut segment_index: HashMap<String, usize> = HashMap::new();
    // Looked up by `&str` first: only a new segment's name is copied.
    let mut segment_of = |seg: &str, stats: &mut Vec<SegmentStats>| match segment_index.get(seg) {
        Some(&s) => s,
        None => {
            stats.push(SegmentStats::named(seg));
            segment_index.insert(seg.to_string(), stats.len() - 1);
            stats.len() - 1
        }
    };
    let mut stats: Vec<SegmentStats> = Vec::new();
    let mut profiles: Vec<(usize, ProfileRow)> = Vec::new(); // (row, profile)
    let mut seen: rustc_hash::FxHashSet<&str> = Default::default();
    let mut duplicates = 0u64;
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..camp.num_rows() {
        let Some(id) = opt_str(ids, i) else { continue };
        if !seen.insert(id) {
            duplicates += 1;
            continue;
        }
        let s = segment_of(opt_str(segs, i).unwrap_or(""), &mut stats);
        let sent = send.is_valid(i) && send.value(i);
        if !sent {
            let reason = opt_str(skip_reason, i).unwrap_or("not sent");
            match skipped.get_mut(reason) {
                Some(n) => *n += 1,
                None => {
                    skipped.insert(reason.to_string(), 1);
                }
            }
        }
        profiles.push((
            i,
            ProfileRow {
                segment: s,
                sent,
                control: opt_str(groups, i) == Some("control"),
                spend: opt_f64(spend, i),
                orders: opt_i64(orders, i),
                clv: opt_f64(clv, i),
                p_purchase: opt_f64(p_purchase, i),
            },
        ));
    }
    let mut totals = SegmentStats::named("all");
    totals.label = "All customers".into();
    for (_, p) in &profiles {
        stats[p.segment].add(p);
        totals.add(p);
    }
    let rec_seg = any_text(&recs, "segment")?;
    for i in 0..recs.num_rows() {
        let s = segment_of(rec_seg.get(i).unwrap_or(""), &mut stats);
        stats[s].recommendations += 1;
        totals.recommendations += 1;
    }
    for s in &mut stats {
        s.finish();
    }
    totals.finish();
    overview::label_and_offer(
        &mut stats,
        &camp,
        profiles.iter().map(|(i, p)| (*i, p.segment)),
    );
    let period = overview::period(&camp, profiles.iter().map(|(i, _)| *i));

    // --- Campaign sends and their measured outcomes ---------------------------------------------
    let sent_on = cfg
        .sent_on
        .map(crate::segmentation::day_string)
        .unwrap_or_else(|| now.date_naive().format("%Y-%m-%d").to_string());
    let sends = outcomes::sends_of(
        ctx,
        &camp,
        &profiles,
        &measure.sources,
        &sent_on,
        cfg.attribution_days,
    );
    let mut ledger = ledger::Ledger::load(ctx)?;
    let measured = outcomes::update(
        &mut ledger,
        sends,
        measure.transactions.as_ref(),
        &stats,
        &sent_on,
        cfg.attribution_days,
    )?;
    drop(measure);

    // --- Files ---------------------------------------------------------------------------------
    let out = &cfg.out_dir;
    let segments_path = out.join("segments.csv");
    let recommendations_path = out.join("recommendations.csv");
    let summary_path = out.join("summary.json");
    let report_path = out.join("report.html");

    let profile_rows: Vec<u32> = profiles.iter().map(|(i, _)| *i as u32).collect();
    let picked = arrow_select::take::take_record_batch(
        &camp,
        &arrow_array::UInt32Array::from(profile_rows),
    )?;
    let profile_table = RecordBatch::try_new(
        Arc::new(Schema::new(
            PROFILE_COLUMNS
                .iter()
                .map(|(out, from)| {
                    let f = picked
                        .schema()
                        .field_with_name(from)
                        .expect("normalized")
                        .clone();
                    f.with_name(*out)
                })
                .collect::<Vec<_>>(),
        )),
        PROFILE_COLUMNS
            .iter()
            .map(|(_, from)| picked.column_by_name(from).expect("normalized").clone())
            .collect(),
    )?;
    write_csv_file(&segments_path, &profile_table)?;
    drop((picked, profile_table));
    write_csv_file(&recommendations_path, &recs)?;
    let message_files = match cfg.messages {
        Messages::None => 0,
        format => write_messages(out, format, ctx, &camp, &profiles, &now, &cfg.unsubscribe)?,
    };
    drop(staging_lock);

    // --- Changes since the previous run ----------------------------------------------------------
    let current = Snapshot {
        run_id: ctx.run_id.clone(),
        at: now.to_rfc3339(),
        profiles: profiles
            .iter()
            .map(|(i, p)| {
                (
                    ids.value(*i).to_string(),
                    (stats[p.segment].segment.clone(), p.clv),
                )
            })
            .collect(),
    };
    let key = lineage::state_key(ctx);
    let stored: Option<Stored> = match ctx.state.get(&key)? {
        Some(bytes) => serde_json::from_slice(&bytes).ok(),
        None => None,
    };
    let baseline = match stored {
        Some(s) if s.current.run_id == ctx.run_id => s.baseline,
        Some(s) => Some(s.current),
        None => None,
    };
    let changes = baseline.as_ref().map(|b| compare(b, &current));

    let files = Files {
        out_dir: out.display().to_string(),
        segments: segments_path.display().to_string(),
        recommendations: recommendations_path.display().to_string(),
        summary: summary_path.display().to_string(),
        report: report_path.display().to_string(),
        messages: (cfg.messages != Messages::None)
            .then(|| out.join("messages").display().to_string()),
        message_files,
    };

    // --- POS batches (sorted by customer for stable batch contents across resumes) ---------------
    let (batches, pos_summary) = match &cfg.pos {
        Some(pos) => {
            let batches = pos_batches(ctx, &camp, &recs, &profiles, pos.batch_size)?;
            let info = json!({ "url": pos.shown_url(), "batches": batches.len(), "batch_size": pos.batch_size });
            (batches, Some(info))
        }
        None => (Vec::new(), None),
    };

    let mut summary = Summary {
        run_id: ctx.run_id.clone(),
        generated_at: now.to_rfc3339(),
        currency: cfg.currency.clone(),
        period,
        totals,
        segments: stats,
        messages_skipped: skipped,
        changes,
        outcomes: Some(measured),
        files,
        pos: pos_summary,
        backtests,
    };
    if duplicates > 0 {
        summary
            .messages_skipped
            .insert("duplicate customer rows (ignored)".into(), duplicates);
    }
    let json_bytes = serde_json::to_vec_pretty(&summary)
        .map_err(|e| NodeError::msg(format!("summary.json: {e}")))?;
    write_atomic(&summary_path, &json_bytes)?;
    write_atomic(&report_path, report::render(&summary).as_bytes())?;

    // The sends are recorded once every file is in place (a resumed run records them then).
    ledger.save(ctx)?;
    // The profiles become the next run's baseline only once every file is in place.
    let stored = Stored {
        version: 1,
        current,
        baseline,
    };
    let bytes =
        serde_json::to_vec(&stored).map_err(|e| NodeError::msg(format!("profiles: {e}")))?;
    ctx.state.put(&key, &bytes)?;

    let emails = match &cfg.email {
        Some(_) => outgoing::outgoing(ctx, &camp, &profiles, &now, &cfg.unsubscribe)?,
        None => Vec::new(),
    };
    Ok(Written {
        summary,
        batches,
        emails,
        sent_on,
    })
}
