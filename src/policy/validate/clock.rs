//! Checks of how a policy's clock runs (`clock`): the target, start and
//! stop rules, pauses, time zone, what a close as a duplicate does, and
//! how a clock learned of late is adopted.

use super::*;

impl Checker {
    pub(super) fn clock(
        &mut self,
        file: &Arc<PathBuf>,
        entry: &Located<ClockEntry>,
        policy_field: &str,
        calendars: &super::calendars::Calendars,
    ) -> Option<ClockRule> {
        let field = format!("{policy_field}.clock");
        let raw = &entry.value;
        let target = self.check(
            file,
            &raw.target,
            format!("{field}.target"),
            duration::parse(&raw.target.value.0),
        );
        let starts = match &raw.starts {
            None => Some(StartRule::Matched),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.starts"),
                match value.value.as_str() {
                    "matched" => Ok(StartRule::Matched),
                    "created" => Ok(StartRule::Created),
                    other => Err(format!("`{other}` is not `matched` or `created`")),
                },
            ),
        };
        let stops = match &raw.stops {
            None
            | Some(Located {
                value: StopEntry::Closed,
                ..
            }) => Some(StopRule::Closed),
            Some(
                located @ Located {
                    value: StopEntry::Labeled(labels),
                    ..
                },
            ) => {
                let field = format!("{field}.stops.labeled");
                if labels.is_empty() {
                    let at = self.at(file, located);
                    self.fail(&at, field, "needs at least one label");
                    None
                } else {
                    let parsed: Result<Vec<_>, String> =
                        labels.iter().map(|l| Pattern::parse(l)).collect();
                    self.check(file, located, field, parsed)
                        .map(StopRule::Labeled)
                }
            }
        };
        let pauses = self.patterns(
            file,
            &raw.pauses_while_labeled,
            &format!("{field}.pauses_while_labeled"),
        );
        let max_pause = match &raw.max_pause {
            None => Some(None),
            Some(value) => self
                .check(
                    file,
                    value,
                    format!("{field}.max_pause"),
                    duration::parse(&value.value.0),
                )
                .map(Some),
        };
        let calendar = match &raw.calendar {
            None => Some(None),
            Some(name) => self
                .calendar_named(file, name, format!("{field}.calendar"), calendars)
                .map(Some),
        };
        let time_zone = match &raw.time_zone {
            // Times are shown in the calendar's zone unless the clock says.
            None => Some(
                calendar
                    .as_ref()
                    .and_then(|c| c.as_ref().map(|c| c.time_zone))
                    .unwrap_or(Tz::UTC),
            ),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.time_zone"),
                value.value.parse::<Tz>().map_err(|_| {
                    format!(
                        "`{}` is not an IANA time zone like `Europe/Berlin` or `UTC`",
                        value.value
                    )
                }),
            ),
        };
        let duplicates = match &raw.duplicates {
            None => Some(DuplicateRule::Follow),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.duplicates"),
                match value.value.as_str() {
                    "follow" => Ok(DuplicateRule::Follow),
                    "resolve" => Ok(DuplicateRule::Resolve),
                    other => Err(format!("`{other}` is not `follow` or `resolve`")),
                },
            ),
        };
        Some(ClockRule {
            duplicates: duplicates?,
            target: target?,
            starts: starts?,
            stops: stops?,
            pauses_while_labeled: pauses?,
            max_pause: max_pause?,
            time_zone: time_zone?,
            calendar: calendar?,
        })
    }

    /// `adopt:` and `adopt_grace:`.
    pub(super) fn adoption(
        &mut self,
        file: &Arc<PathBuf>,
        raw: &PolicyEntry,
        field: &str,
    ) -> Option<Adoption> {
        let defaults = Adoption::default();
        let mode = match &raw.adopt {
            None => Some(defaults.mode),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.adopt"),
                match value.value.as_str() {
                    "digest" => Ok(AdoptMode::Digest),
                    "individual" => Ok(AdoptMode::Individual),
                    "silent" => Ok(AdoptMode::Silent),
                    other => Err(format!(
                        "`{other}` is not `digest`, `individual` or `silent`"
                    )),
                },
            ),
        };
        let grace = match &raw.adopt_grace {
            None => Some(defaults.grace),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.adopt_grace"),
                duration::parse(&value.value.0),
            ),
        };
        Some(Adoption {
            mode: mode?,
            grace: grace?,
        })
    }
}
