//! `labelwarden oncall`: who each rotation in `people` has on call now, and
//! the shifts of the coming weeks, overrides included, in the rotation's
//! own time zone.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{fail, load_policies};
use crate::policy::{PolicySet, Role, Rotation};

#[derive(Debug, Args)]
pub struct OnCallArgs {
    /// Folder of policy files.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// How many weeks ahead to show.
    #[arg(long, default_value_t = 4)]
    weeks: u32,
    /// Show the rotation as of this instant (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<DateTime<Utc>>,
    /// Only this rotation.
    #[arg(long)]
    rotation: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: OnCallArgs) -> ExitCode {
    let set = match load_policies(&args.policies) {
        Ok(set) => set,
        Err(code) => return code,
    };
    let rotations: Vec<&Rotation> = set
        .people
        .rotations
        .values()
        .filter(|r| args.rotation.as_ref().is_none_or(|name| &r.name == name))
        .collect();
    if rotations.is_empty() {
        return fail(match &args.rotation {
            Some(name) => format!("no rotation named `{name}` under `people`"),
            None => format!(
                "no rotation under `people` in {}: add one with `rotation:`, `hand_off:` and `since:`",
                args.policies.display()
            ),
        });
    }
    let now = args.at.unwrap_or_else(Utc::now);
    let until = now + TimeDelta::weeks(i64::from(args.weeks));
    match args.format {
        Format::Text => {
            for rotation in rotations {
                print!("{}", text(&set, rotation, now, until));
            }
        }
        Format::Json => {
            let all: Vec<_> = rotations
                .iter()
                .map(|rotation| {
                    json!({
                        "rotation": rotation.name,
                        "time_zone": rotation.hand_off.time_zone.name(),
                        "now": {
                            "primary": rotation.on_call(Role::Primary, now),
                            "secondary": rotation.on_call(Role::Secondary, now),
                        },
                        "shifts": rotation.shifts(now, until),
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(all));
        }
    }
    ExitCode::SUCCESS
}

/// One rotation as a reader wants it: who now, then each shift.
fn text(set: &PolicySet, rotation: &Rotation, now: DateTime<Utc>, until: DateTime<Utc>) -> String {
    let zone = rotation.hand_off.time_zone;
    let local = |at: DateTime<Utc>| {
        at.with_timezone(&zone)
            .format("%a %Y-%m-%d %H:%M")
            .to_string()
    };
    let slack = |username: &str| match set.people.gitlab_users.get(username) {
        Some(id) => format!("{username} (<@{id}>)"),
        None => username.to_owned(),
    };
    let mut out = format!(
        "{}: hands off {} at {} {}\n  now ({}): primary {}, secondary {}\n",
        rotation.name,
        rotation.hand_off.weekday,
        rotation.hand_off.time.format("%H:%M"),
        zone.name(),
        local(now),
        slack(rotation.on_call(Role::Primary, now)),
        slack(rotation.on_call(Role::Secondary, now)),
    );
    let shifts = rotation.shifts(now, until);
    let width = shifts
        .iter()
        .map(|s| s.primary.len())
        .chain([7])
        .max()
        .unwrap_or(7);
    out.push_str(&format!(
        "  {:<20}  {:<20}  {:<width$}  secondary\n",
        "from", "until", "primary"
    ));
    for shift in shifts {
        out.push_str(&format!(
            "  {:<20}  {:<20}  {:<width$}  {}{}\n",
            local(shift.start),
            local(shift.end),
            shift.primary,
            shift.secondary,
            if shift.overridden { "  (override)" } else { "" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::file;
    use crate::policy::validate::{ParsedFile, validate};

    #[test]
    fn the_table_shows_now_and_each_shift_in_local_time() {
        let yaml = concat!(
            "people:\n",
            "  gitlab_users: { alice: U0ALICE01, bob: U0BOB0001, carol: U0CAROL01 }\n",
            "  oncall:\n",
            "    rotation: [alice, bob, carol]\n",
            "    hand_off: { day: monday, time: \"09:00\", time_zone: Europe/Berlin }\n",
            "    since: 2026-11-02\n",
            "    overrides:\n",
            "      - { secondary: carol, from: \"2026-11-25 12:00\", until: \"2026-11-27 18:00\" }\n",
        );
        let path = Path::new("p.yml");
        let set = validate(vec![ParsedFile {
            path: std::sync::Arc::new(path.to_owned()),
            content: file::parse(path, yaml).unwrap(),
        }])
        .unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .to_utc();
        let shown = text(
            &set,
            &set.people.rotations["oncall"],
            now,
            now + TimeDelta::weeks(1),
        );
        let expected = "\
oncall: hands off Mon at 09:00 Europe/Berlin
  now (Wed 2026-11-25 11:00): primary alice (<@U0ALICE01>), secondary bob (<@U0BOB0001>)
  from                  until                 primary  secondary
  Wed 2026-11-25 11:00  Wed 2026-11-25 12:00  alice    bob
  Wed 2026-11-25 12:00  Fri 2026-11-27 18:00  alice    carol  (override)
  Fri 2026-11-27 18:00  Mon 2026-11-30 09:00  alice    bob
  Mon 2026-11-30 09:00  Wed 2026-12-02 11:00  bob      carol
";
        assert_eq!(shown, expected);
    }
}
