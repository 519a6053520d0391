//! Durations as policies write them (`90s`, `45m`, `24h`, `5d`, `1h 30m`) and
//! as people read them back (`1d 2h 5m`).

use chrono::TimeDelta;

/// Parses a policy duration. Whole seconds only, and never zero: a zero
/// target or interval is always a mistake in an SLA.
pub fn parse(text: &str) -> Result<TimeDelta, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "`{trimmed}` has no unit: write it like `{trimmed}m` or `{trimmed}h`"
        ));
    }
    let std = humantime::parse_duration(trimmed).map_err(|e| {
        format!("`{trimmed}` is not a duration like `90s`, `45m`, `24h` or `5d` ({e})")
    })?;
    if std.subsec_nanos() != 0 {
        return Err(format!("`{trimmed}` must be a whole number of seconds"));
    }
    if std.is_zero() {
        return Err(format!("`{trimmed}` must be longer than zero"));
    }
    TimeDelta::from_std(std).map_err(|_| format!("`{trimmed}` is too long"))
}

/// Formats a duration for people: the two largest units, e.g. `1d 2h`,
/// `3h 20m`, `45s`. Negative durations get a leading minus.
pub fn human(delta: TimeDelta) -> String {
    let mut seconds = delta.num_seconds();
    let sign = if seconds < 0 { "-" } else { "" };
    seconds = seconds.abs();
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let mut parts = Vec::with_capacity(2);
    for (name, size) in units {
        if seconds >= size && parts.len() < 2 {
            parts.push(format!("{}{name}", seconds / size));
            seconds %= size;
        } else if !parts.is_empty() {
            // Stop at the first gap: `1d 5m` would read as more precise than it is.
            break;
        }
    }
    if parts.is_empty() {
        return "0s".to_owned();
    }
    format!("{sign}{}", parts.join(" "))
}

/// Formats a duration the way a policy file writes it (`6h`, `1d 12h`), so a
/// step id derived from a trigger reads like the policy line it came from.
pub fn compact(delta: TimeDelta) -> String {
    let mut seconds = delta.num_seconds();
    let mut out = String::new();
    for (name, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if seconds >= size {
            out.push_str(&format!("{}{name}", seconds / size));
            seconds %= size;
        }
    }
    if out.is_empty() { "0s".to_owned() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_policies_use() {
        assert_eq!(parse("90s"), Ok(TimeDelta::seconds(90)));
        assert_eq!(parse("45m"), Ok(TimeDelta::minutes(45)));
        assert_eq!(parse("24h"), Ok(TimeDelta::hours(24)));
        assert_eq!(parse("5d"), Ok(TimeDelta::days(5)));
        assert_eq!(parse("1h 30m"), Ok(TimeDelta::minutes(90)));
    }

    #[test]
    fn rejects_what_is_not_a_usable_duration() {
        assert!(parse("30").unwrap_err().contains("no unit"));
        assert!(parse("soon").unwrap_err().contains("not a duration"));
        assert!(parse("0s").unwrap_err().contains("longer than zero"));
        assert!(parse("1500ms").unwrap_err().contains("whole number"));
    }

    #[test]
    fn shows_two_largest_units() {
        assert_eq!(human(TimeDelta::seconds(93_784)), "1d 2h");
        assert_eq!(human(TimeDelta::minutes(200)), "3h 20m");
        assert_eq!(human(TimeDelta::seconds(45)), "45s");
        assert_eq!(human(TimeDelta::seconds(-3600)), "-1h");
        assert_eq!(human(TimeDelta::zero()), "0s");
        assert_eq!(human(TimeDelta::seconds(86_400 + 60)), "1d");
    }

    #[test]
    fn compact_round_trips_through_parse() {
        for text in ["6h", "1d12h", "90s", "2d", "1h30m"] {
            assert_eq!(compact(parse(text).unwrap()), text.replace("90s", "1m30s"));
        }
    }
}
