//! Rendering UTC instants for people in the hospital's configured time zone.
//!
//! Everything is stored and compared in UTC; a zone is used only to write messages.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The zone used when a message shows a time to a person (default Asia/Tokyo).
#[derive(Clone, Debug)]
pub struct DisplayZone(TimeZone);

impl DisplayZone {
    /// Looks a zone up by its IANA name in the bundled time zone database.
    pub fn named(name: &str) -> Result<Self, jiff::Error> {
        TimeZone::get(name).map(Self)
    }

    pub fn utc() -> Self {
        Self(TimeZone::UTC)
    }

    /// `13:00 JST`
    pub fn time(&self, at: Timestamp) -> String {
        at.to_zoned_datetime(self.0.clone())
            .strftime("%H:%M %Z")
            .to_string()
    }

    /// `2026-10-01`
    pub fn date(&self, at: Timestamp) -> String {
        at.to_zoned_datetime(self.0.clone())
            .strftime("%Y-%m-%d")
            .to_string()
    }

    /// `2026-10-01 13:00 JST`
    pub fn date_time(&self, at: Timestamp) -> String {
        at.to_zoned_datetime(self.0.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// `2026-10-01T13:00`, the value of an HTML `datetime-local` input in this zone.
    pub fn local_input(&self, at: Timestamp) -> String {
        at.to_zoned_datetime(self.0.clone())
            .strftime("%Y-%m-%dT%H:%M")
            .to_string()
    }

    /// Reads a wall-clock time in this zone (`2026-10-01T13:00`, as a `datetime-local`
    /// input sends it). A time that does not exist or is ambiguous (DST) is an error.
    pub fn parse_local(&self, s: &str) -> Result<Timestamp, jiff::Error> {
        let civil: jiff::civil::DateTime = s.trim().parse()?;
        self.0.to_ambiguous_timestamp(civil).unambiguous()
    }
}

impl DisplayZone {
    /// The zone itself, for rules that read wall-clock times (night, days off).
    pub fn tz(&self) -> &TimeZone {
        &self.0
    }

    /// The instant the day after `date` (`2027-03-31`) begins in this zone: something that
    /// holds "until 2027-03-31" holds through that whole day.
    pub fn after_day(&self, date: &str) -> Result<Timestamp, jiff::Error> {
        let day: jiff::civil::Date = date.trim().parse()?;
        self.0
            .to_ambiguous_timestamp(day.tomorrow()?.at(0, 0, 0, 0))
            .compatible()
    }
}

impl Default for DisplayZone {
    fn default() -> Self {
        Self::named("Asia/Tokyo").unwrap_or_else(|_| Self::utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_ends_at_the_next_midnight_of_the_zone() {
        let z = DisplayZone::named("Asia/Tokyo").unwrap();
        assert_eq!(
            z.after_day("2027-03-31").unwrap(),
            "2027-03-31T15:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(z.after_day("2027-02-30").is_err());
        assert!(z.after_day("tomorrow").is_err());
    }

    #[test]
    fn tokyo_is_nine_hours_ahead_and_abbreviated() {
        let z = DisplayZone::named("Asia/Tokyo").unwrap();
        let t: Timestamp = "2026-11-25T04:00:00Z".parse().unwrap();
        assert_eq!(z.time(t), "13:00 JST");
        assert_eq!(z.date(t), "2026-11-25");
        assert_eq!(z.date_time(t), "2026-11-25 13:00 JST");
    }

    #[test]
    fn unknown_zone_is_an_error() {
        assert!(DisplayZone::named("Mars/Olympus").is_err());
    }
}

#[cfg(test)]
mod local_input_tests {
    use super::*;

    #[test]
    fn local_input_round_trips_in_the_zone() {
        let tokyo = DisplayZone::named("Asia/Tokyo").unwrap();
        let t: Timestamp = "2026-11-26T01:00:00Z".parse().unwrap();
        assert_eq!(tokyo.local_input(t), "2026-11-26T10:00");
        assert_eq!(tokyo.parse_local("2026-11-26T10:00").unwrap(), t);
        assert!(tokyo.parse_local("tomorrow").is_err());
    }
}
