//! Wires the executor together and runs its loop: pull the pending actions, decide on each, run
//! it (dry run first), record the result (run record, Event, audit log) and report it.

use std::sync::Arc;

use anyhow::Context;
use causely_model::{Action, ActionOutcome, ActionResult, UnixMillis};

use crate::audit_log::{AuditLine, AuditLog};
use crate::config::Cli;
use crate::decide::{Decision, decide, outcome_word};
use crate::policy::Policy;
use crate::pull::{Acknowledged, MediatorClient};
use crate::runs::{RunLog, RunRecord, RunState};
use crate::serve::{Exposed, OutcomeLabel};
use crate::{events, kube_actions};

/// What the executor says when it finds an id it started but never finished.
pub const INTERRUPTED: &str =
    "the executor stopped while running this action; whether it took effect is unknown, and it is not run again";

/// Checks the configuration, then runs until SIGTERM or Ctrl-C.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let policy = match &cli.policy {
        Some(path) => Policy::load(path)?,
        None => Policy::default(),
    };
    let url = reqwest::Url::parse(&cli.mediator_url)
        .with_context(|| format!("--mediator-url {:?} is not a URL", cli.mediator_url))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https"),
        "--mediator-url {:?} must be an http:// or https:// URL",
        cli.mediator_url
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(cli, policy))
}

async fn serve(cli: Cli, policy: Policy) -> anyhow::Result<()> {
    causely_runtime::init_logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = causely_runtime::kube_client(cli.kubeconfig.as_deref()).await?;
    let runs = RunLog::open(&cli.state_dir).context("opening the run record")?;
    let audit = AuditLog::open(&cli.state_dir)?;
    let mediator =
        MediatorClient::new(&cli.mediator_url, Some(cli.token_file.clone()), std::time::Duration::from_secs(10))?;
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("listening on {}", cli.listen))?;
    let exposed = Exposed::new();
    let router = crate::serve::router(exposed.clone());
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(error = %err, "health and metrics server stopped");
        }
    });
    tracing::info!(
        mediator = %cli.mediator_url,
        dry_run_only = cli.dry_run_only,
        policy = ?policy,
        known_ids = runs.book().len(),
        "executor started"
    );
    let mut executor = Executor {
        client,
        mediator,
        policy,
        runs,
        audit,
        dry_run_only: cli.dry_run_only,
        instance: causely_runtime::identity(cli.identity.as_deref(), "causely-executor"),
        exposed,
    };
    let mut shutdown = std::pin::pin!(causely_runtime::shutdown());
    loop {
        executor.round().await;
        tokio::select! {
            () = tokio::time::sleep(cli.poll_interval) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}

/// Everything one round needs.
struct Executor {
    client: kube::Client,
    mediator: MediatorClient,
    policy: Policy,
    runs: RunLog,
    audit: AuditLog,
    dry_run_only: bool,
    instance: String,
    exposed: Arc<Exposed>,
}

impl Executor {
    /// Re-sends unacknowledged results, then works through the pending actions in order.
    async fn round(&mut self) {
        for result in self.runs.book().unreported() {
            self.send(&result).await;
        }
        let pending = match self.mediator.pending().await {
            Ok(pending) => pending,
            Err(err) => {
                self.exposed.metrics.mediator_errors.inc();
                tracing::warn!(error = %err, "could not pull actions; retrying next round");
                return;
            }
        };
        for action in pending {
            if let Err(err) = self.handle(&action).await {
                tracing::error!(id = %action.id, error = %format!("{err:#}"), "could not record a decision");
            }
        }
    }

    fn result(&self, action: &Action, outcome: ActionOutcome, dry_run: bool) -> ActionResult {
        ActionResult { id: action.id.clone(), outcome, dry_run, finished: UnixMillis::now() }
    }

    async fn handle(&mut self, action: &Action) -> anyhow::Result<()> {
        let previous = self.runs.book().get(&action.id).cloned();
        let decision = decide(action, previous.as_ref(), &self.policy, UnixMillis::now(), self.dry_run_only);
        let dry = self.dry_run_only || action.dry_run;
        let mut regarding = kube_actions::reference(&action.target);
        let result = match decision {
            Decision::Resend(result) => {
                self.send(&result).await;
                return Ok(());
            }
            Decision::Reject { reason } => self.result(action, ActionOutcome::Rejected { reason }, dry),
            Decision::Interrupted => self.result(action, ActionOutcome::Failed { reason: INTERRUPTED.to_owned() }, dry),
            Decision::Run { dry_run_only } => {
                self.runs.record(RunRecord::Started { id: action.id.clone(), at: UnixMillis::now() })?;
                let outcome = match kube_actions::perform(&self.client, action, true).await {
                    Err(err) => ActionOutcome::Failed { reason: format!("dry run: {err}") },
                    Ok(target) if dry_run_only => {
                        regarding = target;
                        ActionOutcome::Applied {}
                    }
                    Ok(_) => match kube_actions::perform(&self.client, action, false).await {
                        Ok(target) => {
                            regarding = target;
                            ActionOutcome::Applied {}
                        }
                        Err(err) => ActionOutcome::Failed { reason: err.to_string() },
                    },
                };
                self.result(action, outcome, dry_run_only)
            }
        };
        // A repeat of an id already reported keeps its first result in the run record.
        if matches!(previous, None | Some(RunState::Started)) {
            self.runs.record(RunRecord::Finished { result: result.clone() })?;
        }
        tracing::info!(id = %action.id, kind = action.kind.name(), target = %action.target, dry_run = result.dry_run,
            outcome = ?result.outcome, "decided");
        let event = events::event(action, &result, regarding, &self.instance);
        let recorded = events::record(&self.client, &event).await;
        if let Err(err) = &recorded {
            tracing::warn!(id = %action.id, error = %err, "could not record the Event");
        }
        self.audit.append(&AuditLine::new(action, &result, recorded))?;
        self.exposed.metrics.actions.get_or_create(&OutcomeLabel { outcome: outcome_word(&result.outcome) }).inc();
        self.send(&result).await;
        Ok(())
    }

    /// Reports a result; once the mediator has it (or never will take it), the run record says so.
    async fn send(&mut self, result: &ActionResult) {
        match self.mediator.report(result).await {
            Ok(ack) => {
                if ack == Acknowledged::Never {
                    tracing::warn!(id = %result.id, "the mediator will not take this result (unknown id or another result); it stays in the audit log");
                }
                let finished = matches!(self.runs.book().get(&result.id), Some(RunState::Finished(r)) if r == result);
                if finished && let Err(err) = self.runs.record(RunRecord::Reported { id: result.id.clone() }) {
                    tracing::error!(id = %result.id, error = %err, "could not record the report");
                }
            }
            Err(err) => {
                self.exposed.metrics.mediator_errors.inc();
                tracing::warn!(id = %result.id, error = %err, "could not report; retrying next round");
            }
        }
    }
}
