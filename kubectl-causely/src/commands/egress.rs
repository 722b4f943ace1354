//! `kubectl causely egress verify` and `egress tail`: parse, gather, print, map the verdict to an
//! exit code. The work is in `crate::egress`.

use causely_model::UnixMillis;
use causely_model::guard::EgressGuard;

use crate::cli::{EgressArgs, EgressCommand, EgressTailArgs, EgressVerifyArgs, OutputFormat};
use crate::egress::verify::{CheckStatus, Verdict};
use crate::egress::{fetch, format, tail, verify};
use crate::exit::{Failure, Outcome};
use crate::mediator_api::MediatorApi;

pub async fn run(args: EgressArgs) -> Result<Outcome, Failure> {
    match args.command {
        EgressCommand::Verify(args) => run_verify(args).await,
        EgressCommand::Tail(args) => run_tail(args).await,
    }
}

async fn run_verify(args: EgressVerifyArgs) -> Result<Outcome, Failure> {
    let gathered = fetch::gather(&args, UnixMillis::now()).await?;
    let report = verify::verify(&gathered, &EgressGuard::new());
    match args.output {
        OutputFormat::Text => crate::out!("{}", format::report_text(&report)),
        OutputFormat::Json => crate::out!("{}", format::report_json(&report)),
    }
    match report.verdict {
        Verdict::Proven => Ok(Outcome::Clean),
        Verdict::Violation => Ok(Outcome::Problem),
        Verdict::CouldNotVerify => {
            let why: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::CouldNotCheck)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            Err(Failure::CouldNotRun(format!("could not verify: {}", why.join("; "))))
        }
    }
}

async fn run_tail(args: EgressTailArgs) -> Result<Outcome, Failure> {
    let api = MediatorApi::from_flags(&args.mediator, &args.namespace.namespace, &args.cluster).await?;
    tail::follow(&api, args.from_start, args.output).await
}
