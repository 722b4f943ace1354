//! The demo's command line; every flag can also be set by environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::http::Url;

/// Causely demo workload: an HTTP server, a client that calls it, or a CPU burner.
#[derive(Debug, Clone, Parser)]
#[command(name = "causely-demo", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Answer 200 to every HTTP/1.1 request, on any path.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "CAUSELY_DEMO_LISTEN", default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
    },
    /// GET a URL again and again, resolving its host each time; count successes and failures.
    Call(CallOptions),
    /// Keep CPUs busy (one thread each) until stopped.
    Burn {
        /// Number of busy threads.
        #[arg(long, env = "CAUSELY_DEMO_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        threads: u16,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct CallOptions {
    /// http:// URL to GET, e.g. http://web.causely-demo.svc:8080/.
    #[arg(value_parser = |s: &str| s.parse::<Url>())]
    pub url: Url,
    /// Pause between two calls.
    #[arg(long, env = "CAUSELY_DEMO_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Longest a call may take (resolution, connect, response head) before it counts as failed.
    #[arg(long, env = "CAUSELY_DEMO_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How often the counts are written to stderr.
    #[arg(long, env = "CAUSELY_DEMO_REPORT_EVERY", default_value = "1m", value_parser = humantime::parse_duration)]
    pub report_every: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("causely-demo").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_listens_on_8080_unless_told_otherwise() {
        let Command::Serve { listen } = parse(&["serve"]).unwrap().command else { panic!("not serve") };
        assert_eq!(listen, "0.0.0.0:8080".parse().unwrap());
        let Command::Serve { listen } = parse(&["serve", "--listen", "127.0.0.1:9000"]).unwrap().command else {
            panic!("not serve")
        };
        assert_eq!(listen, "127.0.0.1:9000".parse().unwrap());
        assert!(parse(&["serve", "--listen", "localhost"]).is_err());
    }

    #[test]
    fn call_takes_a_url_an_interval_and_reports_once_a_minute_by_default() {
        let Command::Call(o) = parse(&["call", "http://web.causely-demo.svc:8080/"]).unwrap().command else {
            panic!("not call")
        };
        assert_eq!(o.url.host, "web.causely-demo.svc");
        assert_eq!(o.url.port, 8080);
        assert_eq!(o.interval, Duration::from_millis(500));
        assert_eq!(o.report_every, Duration::from_secs(60));
        let Command::Call(o) = parse(&["call", "http://web/x", "--interval", "2s"]).unwrap().command else {
            panic!("not call")
        };
        assert_eq!((o.url.port, o.url.path.as_str(), o.interval), (80, "/x", Duration::from_secs(2)));
    }

    #[test]
    fn call_refuses_a_url_it_cannot_call_and_a_bad_interval() {
        assert!(parse(&["call"]).is_err());
        assert!(parse(&["call", "https://web:8443/"]).is_err());
        assert!(parse(&["call", "http://web/", "--interval", "soon"]).is_err());
    }

    #[test]
    fn burn_uses_one_thread_by_default_and_never_zero() {
        assert!(matches!(parse(&["burn"]).unwrap().command, Command::Burn { threads: 1 }));
        assert!(matches!(parse(&["burn", "--threads", "3"]).unwrap().command, Command::Burn { threads: 3 }));
        assert!(parse(&["burn", "--threads", "0"]).is_err());
    }
}
