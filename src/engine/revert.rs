//! `mfa-bulk revert RESULT.csv`: puts every user an earlier apply changed back to the "before"
//! state recorded in its result file, unless someone changed the user since (drifted).

use std::sync::Arc;

use chrono::Utc;

use super::{apply, flush_items, interrupt, progress, runtime, summary, Item, Mode, UsageError};
use crate::cli::RevertArgs;
use crate::exit::ExitCode;
use crate::graph::{self, Access};
use crate::input::SourceInfo;
use crate::model::{InputRow, RowStatus, User, UserRef};
use crate::report::{self, Action, Outcome};
use crate::resolve::Strategy;

pub fn run_revert(args: RevertArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    if !args.yes && !std::io::stdin().is_terminal() {
        anyhow::bail!(UsageError(
            "revert changes users and asks for confirmation, but standard input is not a \
             terminal: pass --yes to revert without a prompt"
                .into()
        ));
    }
    let started = Utc::now();
    let rows = report::read_results(&args.result)?;
    let sha = report::sha256_file(&args.result)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| report::default_output_path(&args.result, "revert", started));
    super::refuse_existing(&output, args.force, "-o")?;
    let mut items: Vec<Item> = Vec::with_capacity(rows.len());
    for r in rows {
        let input = InputRow {
            row: r.row,
            input: r.input.clone(),
            state: r.state_before.clone(),
            status: match &r.user_id {
                Some(id) => RowStatus::Ok(UserRef::ObjectId(id.clone())),
                None => RowStatus::Invalid {
                    reason: "no user id".into(),
                },
            },
        };
        let target = r
            .state_before
            .clone()
            .unwrap_or(crate::model::MfaState::Disabled);
        let mut it = Item::new(input, &target);
        if let Some(id) = &r.user_id {
            it.user = Some(Arc::new(User {
                id: id.clone(),
                user_principal_name: r.user_principal_name.clone().unwrap_or_default(),
                display_name: r.display_name.clone(),
                ..User::default()
            }));
        }
        let revertible =
            r.outcome == Outcome::Changed && r.user_id.is_some() && r.state_before.is_some();
        if revertible {
            // What the run left: a different state now means someone changed the user since.
            it.result.state_after = r.state_after.clone();
        } else {
            it.result.target_state = None;
            it.finish(
                Outcome::NoChange,
                Some(format!(
                    "nothing to revert: that run's outcome was {}",
                    r.outcome.as_str()
                )),
            );
        }
        items.push(it);
    }

    runtime()?.block_on(async move {
        let (graph, _sim) = graph::connect_from_args(&args.graph).await?;
        graph.check_access(Access::Write)?;
        let identity = graph.identity();
        let interrupted = interrupt::watch(graph.clone());
        let mut writer = report::OrderedWriter::new(report::create_writer(&output, args.force)?, 0);

        let key = apply::JournalKey::new("revert", &sha, &identity.tenant_id, String::new(), started);
        let previous = apply::load_previous(&key, false, &args.result.display().to_string())?;

        // Read what each user is now.
        let open: Vec<usize> = (0..items.len()).filter(|&i| !items[i].done).collect();
        let ids = super::user_ids(&items, &open);
        let pb = progress::bar(ids.len() as u64, "reading");
        {
            let items = &mut items;
            let mut n = 0;
            graph
                .get_states(&ids, |k, res| {
                    let it = &mut items[open[k]];
                    let left = it.result.state_after.take();
                    match res {
                        Ok(reply) => {
                            let now = reply.value;
                            it.result.request_id = reply.request_id;
                            let before = it.target.clone();
                            // The revert's "before" is the state now; its target is the old before.
                            it.result.state_before = Some(now.clone());
                            let user_id = it.user.as_ref().expect("user").id.clone();
                            if let (Some(prev), true) = (previous.get(&user_id), now == before) {
                                // Reverted by an interrupted run of this same revert.
                                it.result.state_before = Some(prev.before.clone());
                                it.result.state_after = Some(now);
                                it.result.action = Action::Set(before);
                                it.result.request_id = prev.request_id.clone().or(it.result.request_id.take());
                                it.finish(Outcome::Changed, None);
                            } else if now == before {
                                // Already back where that run found it (an earlier revert, or
                                // someone else): nothing to do, whatever happened in between.
                                it.result.state_after = Some(now);
                                it.finish(Outcome::NoChange, None);
                            } else if left.as_ref() != Some(&now) {
                                it.finish(
                                    Outcome::Drifted,
                                    Some(format!(
                                        "changed since that run: it left {}, the user is {now} now: not touched",
                                        left.as_ref().map(|s| s.as_str()).unwrap_or("unknown")
                                    )),
                                );
                            } else {
                                it.result.action = Action::Set(before);
                            }
                        }
                        Err(e) => super::fail_read(it, e, "reading the MFA state"),
                    }
                    n += 1;
                    pb.set_position(n);
                })
                .await;
        }
        pb.finish_and_clear();
        flush_items(&mut items, &mut writer)?;

        let pending: Vec<usize> = (0..items.len())
            .filter(|&i| !items[i].done && matches!(items[i].result.action, Action::Set(_)))
            .collect();
        if !pending.is_empty() && !args.yes {
            let question = format!(
                "Put {} users back to their state before that run in tenant {}?",
                pending.len(),
                identity.tenant_id
            );
            if !super::ask(&question)? || interrupted.is_set() {
                for &i in &pending {
                    items[i].finish(Outcome::Skipped, Some("not reverted: the admin answered no".into()));
                }
                flush_items(&mut items, &mut writer)?;
                writer.finish()?;
                eprintln!("Nothing changed.");
                return Ok(ExitCode::Success);
            }
        }
        let mut journal = apply::open_journal(&key)?;
        apply::write_all(&graph, &mut items, &pending, &mut journal, &mut writer, &interrupted, true).await?;
        flush_items(&mut items, &mut writer)?;
        writer.finish()?;

        let summary = summary::Summary::new(Mode::Revert, &items, Strategy::Lookup, interrupted.is_set(), graph.stats());
        let code = summary.exit_code();
        let options = serde_json::json!({ "result": args.result, "yes": args.yes });
        let record = summary.run_record("revert", &identity, &args.result, &sha, options, started, &output, code);
        let record_path = report::write_run_record(&output, &record)?;
        if !interrupted.is_set() {
            apply::close_journal(journal, &key)?;
        }
        let info = SourceInfo {
            path: args.result.clone(),
            format: "CSV".into(),
            encoding: None,
            delimiter: None,
            sheet: None,
            column: "user_id".into(),
            column_letter: "D".into(),
            header_row: Some(1),
            state_column: Some("state_before".into()),
        };
        summary.print(&info, &identity, &output, &record_path, args.json)?;
        Ok(code)
    })
}
