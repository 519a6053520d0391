//! Patterns for labels and project paths: exact (`priority::highest`) or with `*`
//! wildcards (`priority::*`, `acme/*`). Matching is exact in case, as GitLab
//! label titles and paths are.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    has_wildcard: bool,
}

impl Pattern {
    /// Checks and builds a pattern. Empty patterns and patterns made only of
    /// wildcards are refused: they would match every label.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("a label cannot be empty".to_owned());
        }
        if trimmed.chars().all(|c| c == '*') {
            return Err(format!("`{trimmed}` would match every label"));
        }
        if trimmed != text {
            return Err(format!("`{text}` has spaces around it"));
        }
        Ok(Pattern {
            text: text.to_owned(),
            has_wildcard: text.contains('*'),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, label: &str) -> bool {
        if self.has_wildcard {
            wildcard_match(self.text.as_bytes(), label.as_bytes())
        } else {
            self.text == label
        }
    }

    /// True if any of `labels` matches.
    pub fn matches_any<'a>(&self, labels: impl IntoIterator<Item = &'a str>) -> bool {
        labels.into_iter().any(|label| self.matches(label))
    }

    /// The label itself when there is no wildcard: what can be added to an
    /// issue or passed to GitLab's server-side label filter.
    pub fn exact(&self) -> Option<&str> {
        (!self.has_wildcard).then_some(self.text.as_str())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Iterative `*` matching with single-star backtracking: linear in practice
/// and never recursive, whatever the pattern.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    #[test]
    fn exact_labels_match_only_themselves() {
        assert!(pattern("priority::highest").matches("priority::highest"));
        assert!(!pattern("priority::highest").matches("priority::high"));
        assert!(!pattern("priority::highest").matches("Priority::highest"));
    }

    #[test]
    fn scoped_wildcard_matches_every_value_of_the_scope() {
        let any_priority = pattern("priority::*");
        assert!(any_priority.matches("priority::high"));
        assert!(any_priority.matches("priority::highest"));
        assert!(!any_priority.matches("urgency::highest"));
        assert!(!any_priority.matches("priority"));
    }

    #[test]
    fn wildcards_anywhere() {
        assert!(pattern("*::security").matches("type::security"));
        assert!(pattern("sev*::1").matches("severity::1"));
        assert!(pattern("a*b*c").matches("aXbYbZc"));
        assert!(!pattern("a*b*c").matches("aXbYbZ"));
    }

    #[test]
    fn refuses_patterns_that_match_everything_or_nothing() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("**").is_err());
        assert!(Pattern::parse(" bug").is_err());
    }

    #[test]
    fn exact_is_only_for_patterns_without_wildcards() {
        assert_eq!(pattern("missed::SLA").exact(), Some("missed::SLA"));
        assert_eq!(pattern("priority::*").exact(), None);
    }
}
