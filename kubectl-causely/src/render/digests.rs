//! The manifest digests of the project's images that this build of the plugin pins them by: checked at build
//! time (build.rs includes this file, so a malformed digests file fails the build, not an install) and
//! looked up when an image reference is rendered.
//!
//! std only: build.rs compiles this file too.

use std::fmt;

/// The images `scripts/images` builds, by the key it gives each in digests.json. The demo's is accepted (the
/// file lists it) but no release object runs it.
pub const KNOWN: [&str; 4] = ["agent", "mediator", "executor", "demo"];

/// Why a digests file cannot be embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestsError {
    UnknownComponent(String),
    BadDigest { component: String, digest: String },
}

impl fmt::Display for DigestsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestsError::UnknownComponent(key) => {
                write!(f, "unknown component {key:?} (known: {})", KNOWN.join(", "))
            }
            DigestsError::BadDigest { component, digest } => {
                write!(f, "{component}: {digest:?} is not sha256: followed by 64 lowercase hex digits")
            }
        }
    }
}

impl std::error::Error for DigestsError {}

/// Whether `digest` is a SHA-256 manifest digest as registries write it.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Checks every (component, digest) pair of a digests file.
pub fn check<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(), DigestsError> {
    for (component, digest) in entries {
        if !KNOWN.contains(&component) {
            return Err(DigestsError::UnknownComponent(component.to_owned()));
        }
        if !is_sha256_digest(digest) {
            return Err(DigestsError::BadDigest { component: component.to_owned(), digest: digest.to_owned() });
        }
    }
    Ok(())
}

/// `text` with every `@sha256:<64 hex>` removed: a release rendered without this build's digests (what
/// `manifests/` keeps, and what `make manifests` writes).
pub fn strip(text: &str) -> String {
    const MARK: &str = "@sha256:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let candidate = &rest[at + 1..];
        let digest_len = MARK.len() - 1 + 64;
        if candidate.get(..digest_len).is_some_and(is_sha256_digest) {
            out.push_str(&rest[..at]);
            rest = &candidate[digest_len..];
        } else {
            out.push_str(&rest[..at + MARK.len()]);
            rest = &rest[at + MARK.len()..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn only_sha256_with_64_lowercase_hex_digits_is_a_digest() {
        assert!(is_sha256_digest(D));
        for bad in ["", "sha256:", &D[..70], &D.to_uppercase(), &D.replace("sha256", "sha512"), &format!("{D}0")] {
            assert!(!is_sha256_digest(bad), "{bad}");
        }
    }

    #[test]
    fn a_digests_file_may_name_only_known_components_with_real_digests() {
        assert_eq!(check([("agent", D), ("mediator", D), ("executor", D), ("demo", D)]), Ok(()));
        assert_eq!(check([("database", D)]), Err(DigestsError::UnknownComponent("database".into())));
        let err = check([("agent", "latest")]).unwrap_err();
        assert_eq!(err.to_string(), "agent: \"latest\" is not sha256: followed by 64 lowercase hex digits");
    }

    #[test]
    fn stripping_removes_whole_digests_and_nothing_else() {
        let text = format!("image: r.io/causely-agent:0.1.0@{D}\nimage: vm:v1@sha256:short\nx@sha256:");
        assert_eq!(strip(&text), "image: r.io/causely-agent:0.1.0\nimage: vm:v1@sha256:short\nx@sha256:");
        assert_eq!(strip("no digests"), "no digests");
    }
}
