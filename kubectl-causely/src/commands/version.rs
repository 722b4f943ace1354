//! `kubectl causely version`: the plugin's version and, unless `--client`, the API server's.

use serde::Serialize;

use crate::cli::{OutputFormat, VersionArgs};
use crate::exit::{Failure, Outcome, api_failure};
use crate::kubeconfig;

/// The plugin's own version, from Cargo.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VersionReport {
    pub client_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
}

/// Renders the report in the requested format.
pub fn render(report: &VersionReport, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(report).unwrap_or_default(),
        OutputFormat::Text => {
            let mut out = format!("Client Version: {}", report.client_version);
            if let Some(server) = &report.server_version {
                out.push_str(&format!("\nServer Version: {server}"));
            }
            out
        }
    }
}

pub async fn run(args: VersionArgs) -> Result<Outcome, Failure> {
    let mut report = VersionReport { client_version: CLIENT_VERSION.to_owned(), server_version: None };
    if !args.client {
        let (client, config) = kubeconfig::client(&args.cluster).await?;
        let info = client
            .apiserver_version()
            .await
            .map_err(|e| api_failure(format!("cannot reach the API server at {}", config.cluster_url), e))?;
        report.server_version = Some(info.git_version);
    }
    crate::outln!("{}", render(&report, args.output));
    Ok(Outcome::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_output_names_both_versions() {
        let report = VersionReport { client_version: "0.1.0".into(), server_version: Some("v1.35.4".into()) };
        assert_eq!(render(&report, OutputFormat::Text), "Client Version: 0.1.0\nServer Version: v1.35.4");
    }

    #[test]
    fn json_output_omits_the_server_when_not_asked() {
        let report = VersionReport { client_version: "0.1.0".into(), server_version: None };
        let json: serde_json::Value = serde_json::from_str(&render(&report, OutputFormat::Json)).unwrap();
        assert_eq!(json, serde_json::json!({"clientVersion": "0.1.0"}));
    }
}
