//! Encoding of samples as Prometheus exposition text with millisecond timestamps, the body
//! VictoriaMetrics takes at `POST /api/v1/import/prometheus`.
//!
//! Text rather than VictoriaMetrics' JSON lines because it carries `NaN` and `±Inf`, which JSON
//! cannot, and is the more compact of the two. Names are checked here, not escaped: an invalid
//! name would make VictoriaMetrics refuse or misparse the whole line, so it is skipped and counted.

use std::fmt::Write;

use super::Sample;

/// One encoded batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// One line per sample, each ending in `\n`.
    pub text: String,
    /// Samples in `text`.
    pub samples: u64,
    /// Samples skipped for an invalid metric or label name.
    pub invalid: u64,
}

/// Whether `name` is a valid Prometheus metric name.
pub fn valid_metric_name(name: &str) -> bool {
    valid_name(name, true)
}

/// Whether `name` is a valid Prometheus label name.
pub fn valid_label_name(name: &str) -> bool {
    valid_name(name, false)
}

fn valid_name(name: &str, colon: bool) -> bool {
    let mut chars = name.chars();
    let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    match chars.next() {
        Some(c) if first_ok(c) => chars.all(|c| first_ok(c) || c.is_ascii_digit()),
        _ => false,
    }
}

/// Encodes `samples`, skipping (and counting) those with an invalid name.
pub fn encode<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Encoded {
    let mut out = Encoded::default();
    for sample in samples {
        if !valid_metric_name(&sample.metric) || !sample.labels.iter().all(|(name, _)| valid_label_name(name)) {
            out.invalid += 1;
            continue;
        }
        write_line(&mut out.text, sample);
        out.samples += 1;
    }
    out
}

fn write_line(out: &mut String, sample: &Sample) {
    out.push_str(&sample.metric);
    if !sample.labels.is_empty() {
        out.push('{');
        for (i, (name, value)) in sample.labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    write_value(out, sample.value);
    // Writing to a String cannot fail.
    let _ = writeln!(out, " {}", sample.time_ms);
}

/// The exposition format's three escapes; everything else is literal UTF-8.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // Debug is the shortest text that parses back to the same f64, and switches to an
        // exponent for very large or small values instead of hundreds of digits.
        let _ = write!(out, "{value:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(metric: &str, labels: &[(&str, &str)], value: f64, time_ms: u64) -> Sample {
        Sample {
            metric: metric.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value,
            time_ms,
        }
    }

    #[test]
    fn a_sample_becomes_one_line_with_labels_value_and_millisecond_timestamp() {
        let encoded = encode(&[
            sample(
                "container_cpu_seconds_total",
                &[("pod_uid", "abc"), ("container", "nginx")],
                12.5,
                1_700_000_000_123,
            ),
            sample("node_load1", &[], 3.0, 1_700_000_000_999),
        ]);
        assert_eq!(
            encoded.text,
            "container_cpu_seconds_total{pod_uid=\"abc\",container=\"nginx\"} 12.5 1700000000123\n\
             node_load1 3.0 1700000000999\n"
        );
        assert_eq!((encoded.samples, encoded.invalid), (2, 0));
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline_and_keep_other_text() {
        let encoded = encode(&[sample("m", &[("a", "q\"uo\\te\nnl ü,}")], 1.0, 5)]);
        assert_eq!(encoded.text, "m{a=\"q\\\"uo\\\\te\\nnl ü,}\"} 1.0 5\n");
    }

    #[test]
    fn special_and_extreme_values_are_written_so_they_parse_back_exactly() {
        let values = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, 5e-324, -0.1, 0.0];
        let text = encode(&values.map(|v| sample("m", &[], v, 1))).text;
        let written: Vec<&str> = text.lines().map(|l| l.split(' ').nth(1).unwrap()).collect();
        assert_eq!(written, ["NaN", "+Inf", "-Inf", "1e300", "5e-324", "-0.1", "0.0"]);
        for (w, v) in written.iter().zip(values).skip(3) {
            assert_eq!(w.parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn samples_with_invalid_names_are_skipped_and_counted() {
        let encoded = encode(&[
            sample("bad-name", &[], 1.0, 1),
            sample("9starts_with_digit", &[], 1.0, 1),
            sample("ok", &[("bad:label", "x")], 1.0, 1),
            sample("ok", &[("", "x")], 1.0, 1),
            sample("", &[], 1.0, 1),
            sample("ns:ok_1", &[("_l2", "x")], 2.0, 1),
        ]);
        assert_eq!(encoded.text, "ns:ok_1{_l2=\"x\"} 2.0 1\n");
        assert_eq!((encoded.samples, encoded.invalid), (1, 5));
    }

    #[test]
    fn metric_names_may_hold_colons_but_label_names_may_not() {
        assert!(valid_metric_name("a:b_c9") && valid_metric_name(":x") && valid_metric_name("_"));
        assert!(!valid_label_name("a:b") && valid_label_name("_a9"));
        assert!(!valid_metric_name("é") && !valid_label_name("a b"));
    }
}
