//! Short text forms for the screen: ages ("5m"), byte sizes ("3.3 MiB"), counts ("1,204"),
//! entity names by kind ("pod web-1"), and the colour of each severity.

use causely_model::{EntityId, Severity};
use ratatui::style::{Color, Style};

/// An age in the largest whole unit: `42s`, `5m`, `3h`, `2d`.
pub fn age(millis: u64) -> String {
    let seconds = millis / 1_000;
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m", seconds / 60),
        3_600..86_400 => format!("{}h", seconds / 3_600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// A short duration such as a retry delay: `800ms`, `4s`.
pub fn duration(millis: u64) -> String {
    if millis < 1_000 { format!("{millis}ms") } else { age(millis) }
}

/// A byte count in binary units with one decimal: `512 B`, `4.0 KiB`, `3.3 MiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if count < 1_024 {
        return format!("{count} B");
    }
    let mut value = count as f64 / 1_024.0;
    let mut unit = 0;
    while value >= 1_024.0 && unit + 1 < UNITS.len() {
        value /= 1_024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A count with thousands separators: `1,204`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A short tag for the kind of entity (`ns`, `svc`, `deploy`, `pod`, `ctr`, `node`, ...) and its own
/// name, for rows that sit under their namespace or pod already.
pub fn short(id: &EntityId) -> (&'static str, &str) {
    use causely_model::WorkloadKind as W;
    match id {
        EntityId::Node { name } => ("node", name),
        EntityId::Namespace { name } => ("ns", name),
        EntityId::Pod { name, .. } => ("pod", name),
        EntityId::Container { name, .. } => ("ctr", name),
        EntityId::Service { name, .. } => ("svc", name),
        EntityId::Workload { kind, name, .. } => (
            match kind {
                W::Deployment => "deploy",
                W::ReplicaSet => "rs",
                W::StatefulSet => "sts",
                W::DaemonSet => "ds",
                W::Job => "job",
                W::CronJob => "cronjob",
                W::ReplicationController => "rc",
            },
            name,
        ),
    }
}

/// How a severity is coloured.
pub fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Critical => Style::new().fg(Color::Red).bold(),
        Severity::High => Style::new().fg(Color::Red),
        Severity::Medium => Style::new().fg(Color::Yellow),
        Severity::Low => Style::new().fg(Color::Blue),
    }
}

/// `text` cut to `width` characters, with `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_largest_whole_unit() {
        assert_eq!(age(999), "0s");
        assert_eq!(age(59_999), "59s");
        assert_eq!(age(60_000), "1m");
        assert_eq!(age(7_200_000), "2h");
        assert_eq!(age(3 * 86_400_000), "3d");
        assert_eq!(duration(800), "800ms");
        assert_eq!(duration(4_200), "4s");
    }

    #[test]
    fn byte_sizes_are_binary_with_one_decimal() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4_096), "4.0 KiB");
        assert_eq!(bytes(3_456_789), "3.3 MiB");
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_204), "1,204");
        assert_eq!(count(12_345_678), "12,345,678");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(fit("abcdef", 6), "abcdef");
        assert_eq!(fit("abcdefg", 6), "abcde…");
    }

    #[test]
    fn entities_get_a_kind_tag_and_their_own_name() {
        assert_eq!(short(&EntityId::container("shop", "web-1", "nginx")), ("ctr", "nginx"));
        let deploy = EntityId::workload(causely_model::WorkloadKind::Deployment, "shop", "web");
        assert_eq!(short(&deploy), ("deploy", "web"));
    }
}
