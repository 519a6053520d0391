//! Checks of `maintenance:` windows: a name used once, a reason, exactly
//! one thing silenced (a policy or channel the files define, or a project
//! path), and a time that can happen (a start before the end, no longer
//! than [`LONGEST`], known weekdays, times and time zones).

use std::collections::BTreeSet;

use super::definitions::instant_in;
use super::*;
use crate::policy::file::{MaintenanceEntry, OnceEntry, WeeklyEntry};
use crate::policy::maintenance::{LONGEST, Maintenance, MuteScope, WindowTime, weekday};

impl Checker {
    /// Every file's windows, checked against the merged policies and channels.
    pub(super) fn maintenance(
        &mut self,
        files: &[ParsedFile],
        policies: &[Policy],
        channels: &BTreeMap<String, Channel>,
    ) -> Vec<Maintenance> {
        let mut windows = Vec::new();
        let mut sites: BTreeMap<String, SourceLocation> = BTreeMap::new();
        let policies: BTreeSet<&str> = policies.iter().map(|p| p.name.0.as_str()).collect();
        for file in files {
            for entry in &file.content.maintenance {
                let name = entry.value.name.value.trim();
                let at = self.at(&file.path, &entry.value.name);
                if let Some(first) = sites.get(name) {
                    self.fail(
                        &at,
                        format!("maintenance[{name}].name"),
                        format!("a window with this name is already defined at {first}"),
                    );
                    continue;
                }
                sites.insert(name.to_owned(), at);
                if let Some(window) = self.window(&file.path, entry, &policies, channels) {
                    windows.push(window);
                }
            }
        }
        windows
    }

    fn window(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<MaintenanceEntry>,
        policies: &BTreeSet<&str>,
        channels: &BTreeMap<String, Channel>,
    ) -> Option<Maintenance> {
        let raw = &entry.value;
        let name = raw.name.value.trim();
        let field = format!("maintenance[{name}]");
        let at = self.at(file, entry);
        let named = self.check(
            file,
            &raw.name,
            format!("{field}.name"),
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                Ok(())
            } else {
                Err("use letters, digits, `-`, `_` and `.` only".to_owned())
            },
        );
        let reason = self.check(
            file,
            &raw.reason,
            format!("{field}.reason"),
            match raw.reason.value.trim() {
                "" => Err("is empty: say why, for the summary when it ends".to_owned()),
                reason => Ok(reason.to_owned()),
            },
        );
        let silenced = match (&raw.policy, &raw.channel, &raw.project) {
            (Some(policy), None, None) => self.check(
                file,
                policy,
                format!("{field}.policy"),
                if policies.contains(policy.value.trim()) {
                    Ok((MuteScope::Policy, policy.value.trim().to_owned()))
                } else {
                    Err(format!(
                        "`{}` is no policy of the policy files",
                        policy.value
                    ))
                },
            ),
            (None, Some(channel), None) => self.check(
                file,
                channel,
                format!("{field}.channel"),
                if channels.contains_key(channel.value.trim()) {
                    Ok((MuteScope::Channel, channel.value.trim().to_owned()))
                } else {
                    Err(format!(
                        "`{}` is no channel under `channels:`",
                        channel.value
                    ))
                },
            ),
            (None, None, Some(project)) => self.check(
                file,
                project,
                format!("{field}.project"),
                match project.value.trim() {
                    path if path.contains('/') && !path.contains(char::is_whitespace) => {
                        Ok((MuteScope::Project, path.trim_matches('/').to_owned()))
                    }
                    path => Err(format!(
                        "`{path}` is not a project path like `group/project`"
                    )),
                },
            ),
            _ => {
                self.fail(
                    &at,
                    &field,
                    "give exactly one of `policy`, `channel` or `project`: what it silences",
                );
                None
            }
        };
        let when = match (&raw.once, &raw.weekly) {
            (Some(once), None) => self.once(file, once, &field),
            (None, Some(weekly)) => self.weekly(file, weekly, &field),
            _ => {
                self.fail(
                    &at,
                    &field,
                    "give exactly one of `once` (from, until) or `weekly` (days, from, until)",
                );
                None
            }
        };
        named?;
        let (scope, target) = silenced?;
        Some(Maintenance {
            name: name.to_owned(),
            reason: reason?,
            scope,
            target,
            when: when?,
            source: at,
        })
    }

    fn zone(
        &mut self,
        file: &Arc<PathBuf>,
        located: &Located<impl Sized>,
        field: &str,
        zone: Option<&str>,
    ) -> Option<Tz> {
        let Some(zone) = zone else {
            return Some(Tz::UTC);
        };
        self.check(
            file,
            located,
            format!("{field}.time_zone"),
            zone.trim().parse::<Tz>().map_err(|_| {
                format!("`{zone}` is not an IANA time zone like `Europe/Berlin` or `UTC`")
            }),
        )
    }

    fn once(
        &mut self,
        file: &Arc<PathBuf>,
        located: &Located<OnceEntry>,
        field: &str,
    ) -> Option<WindowTime> {
        let once = &located.value;
        let field = format!("{field}.once");
        let zone = self.zone(file, located, &field, once.time_zone.as_deref())?;
        let instant = |checker: &mut Checker, key: &str, text: &str| {
            checker.check(
                file,
                located,
                format!("{field}.{key}"),
                instant_in(zone, text).ok_or_else(|| {
                    format!(
                        "`{text}` is not a time like `2026-12-05T22:00:00Z` or `2026-12-05 22:00`"
                    )
                }),
            )
        };
        let from = instant(self, "from", &once.from);
        let until = instant(self, "until", &once.until);
        let (from, until) = (from?, until?);
        self.check(
            file,
            located,
            format!("{field}.until"),
            window_length(until - from),
        )?;
        Some(WindowTime::Once { from, until })
    }

    fn weekly(
        &mut self,
        file: &Arc<PathBuf>,
        located: &Located<WeeklyEntry>,
        field: &str,
    ) -> Option<WindowTime> {
        let weekly = &located.value;
        let field = format!("{field}.weekly");
        let zone = self.zone(file, located, &field, weekly.time_zone.as_deref());
        let days = match &weekly.days {
            None => Some(
                std::iter::successors(Some(Weekday::Mon), |d| Some(d.succ()))
                    .take(7)
                    .collect(),
            ),
            Some(days) if days.is_empty() => {
                self.fail(
                    &self.at(file, located),
                    format!("{field}.days"),
                    "is empty: name the days, or leave `days` out for every day",
                );
                None
            }
            Some(days) => {
                let parsed: Result<Vec<Weekday>, String> =
                    days.iter().map(|day| weekday(day)).collect();
                self.check(file, located, format!("{field}.days"), parsed)
                    .map(|mut days: Vec<Weekday>| {
                        days.sort_by_key(|d| d.num_days_from_monday());
                        days.dedup();
                        days
                    })
            }
        };
        let time = |checker: &mut Checker, key: &str, text: &str| {
            checker.check(
                file,
                located,
                format!("{field}.{key}"),
                NaiveTime::parse_from_str(text.trim(), "%H:%M")
                    .map_err(|_| format!("`{text}` is not a time of day like `02:00`")),
            )
        };
        let from = time(self, "from", &weekly.from);
        let until = time(self, "until", &weekly.until);
        let (from, until) = (from?, until?);
        if from == until {
            self.fail(
                &self.at(file, located),
                format!("{field}.until"),
                "is `from`: a window of no time, or of a whole day? Say `00:00`–`23:59` for a day",
            );
            return None;
        }
        Some(WindowTime::Weekly {
            days: days?,
            from,
            until,
            time_zone: zone?,
        })
    }
}

fn window_length(length: TimeDelta) -> Result<(), String> {
    if length <= TimeDelta::zero() {
        Err("is not after `from`".to_owned())
    } else if length > LONGEST {
        Err(format!(
            "is {} days after `from`: a window of more than 7 days silences the alerting, \
             not maintenance; use `labelwarden mute` for a longer known outage",
            length.num_days()
        ))
    } else {
        Ok(())
    }
}
