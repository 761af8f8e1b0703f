//! The upload protocol's rules: what an HTTP outcome means for a batch (delivered, retry,
//! split, reject), jittered exponential backoff, and Retry-After. The logger applies them;
//! the host performs the request.

use alloc::string::String;
use alloc::vec::Vec;

use crate::rng::Rng;

/// Content type of a batch body (protobuf `Batch`, gzip-compressed, possibly multi-member).
pub const CONTENT_TYPE: &str = "application/x-sightline-batch";
/// Path of the ingestion endpoint, relative to the collector's base URL.
pub const UPLOAD_PATH: &str = "/v1/batches";
/// Header carrying the app key.
pub const APP_KEY_HEADER: &str = "x-sightline-app-key";
/// Header naming the batch (`<session id>/<batch no>`), for the collector's logs.
pub const BATCH_HEADER: &str = "x-sightline-batch";
/// A host that never reports an outcome is treated as a network error after this long, so
/// a lost callback cannot stall uploads forever.
pub const UPLOAD_TIMEOUT_MS: u64 = 60_000;
/// Retry-After beyond this is capped: a misconfigured server must not silence a device for days.
pub const MAX_RETRY_AFTER_MS: u64 = 60 * 60 * 1000;

/// One HTTP header of an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// One request for the host to perform: POST `body` to `path` with `headers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// Pass back to `handle_upload_result`.
    pub id: u64,
    pub path: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// What happened to an upload, as the host saw it: no binding parses anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    /// The server answered with this status; `retry_after` is the raw `Retry-After` header
    /// text, if any (delay-seconds or an HTTP date; the core parses and caps it).
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// No HTTP answer: DNS, connect, TLS, timeout, reset.
    NetworkError,
}

impl UploadOutcome {
    /// A status without Retry-After.
    pub fn status(code: u16) -> Self {
        UploadOutcome::Status {
            code,
            retry_after: None,
        }
    }
}

/// What the logger does with a batch after an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    Delivered,
    Retry,
    /// 413: upload the two halves instead.
    Split,
    /// Permanent refusal: drop and count.
    Reject,
}

/// Classifies an outcome.
pub fn classify(outcome: &UploadOutcome) -> Disposition {
    match *outcome {
        UploadOutcome::NetworkError => Disposition::Retry,
        UploadOutcome::Status { code, .. } => match code {
            200..=299 => Disposition::Delivered,
            413 => Disposition::Split,
            // Timeout, conflict-in-progress, too-early and rate limits are transient.
            408 | 425 | 429 => Disposition::Retry,
            400..=499 => Disposition::Reject,
            // 1xx/3xx are not valid final answers to this POST; 5xx are transient.
            _ => Disposition::Retry,
        },
    }
}

/// Delay before attempt `attempts + 1`: exponential from `base_ms`, capped at `max_ms`,
/// with "equal jitter" (half fixed, half random) so a fleet does not retry in lockstep.
pub fn backoff_ms(attempts: u32, base_ms: u64, max_ms: u64, rng: &mut Rng) -> u64 {
    let exp = base_ms.saturating_mul(1u64 << attempts.saturating_sub(1).min(40));
    let delay = exp.min(max_ms);
    delay / 2 + rng.up_to(delay - delay / 2)
}

/// Parses a Retry-After value: delay-seconds or an IMF-fixdate
/// ("Wed, 21 Oct 2015 07:28:00 GMT"), relative to `now_wall_ms`. Capped at [`MAX_RETRY_AFTER_MS`].
pub fn parse_retry_after(value: &str, now_wall_ms: u64) -> Option<u64> {
    // HTTP's optional whitespace is ASCII (RFC 9110); no Unicode tables needed.
    let value = value.trim_ascii().as_bytes();
    let ms = if let Some(seconds) = unsigned(value) {
        seconds.saturating_mul(1000)
    } else {
        parse_imf_fixdate(value)?.saturating_sub(now_wall_ms)
    };
    Some(ms.min(MAX_RETRY_AFTER_MS))
}

/// Milliseconds since the Unix epoch of an IMF-fixdate. The fields are read as
/// `str::split` and `str::parse` read them (one separator between fields, anything after
/// the `GMT` field or the seconds ignored), on bytes: no UTF-8 or integer parsing code.
fn parse_imf_fixdate(s: &[u8]) -> Option<u64> {
    let mut parts = Fields::new(s, b' ');
    let _weekday = parts.next()?;
    let day = unsigned(parts.next()?)?;
    let name = parts.next()?;
    let month = MONTHS.chunks_exact(3).position(|m| m == name)? as u32 + 1;
    // A year as `i64` parses: a sign is allowed, so "-0" is year 0 and any other negative
    // year is out of range.
    let year = match number(parts.next()?)? {
        (false, y) | (true, y @ 0) => y,
        (true, _) => return None,
    };
    let mut hms = Fields::new(parts.next()?, b':');
    let h = unsigned(hms.next()?)?;
    let m = unsigned(hms.next()?)?;
    let sec = unsigned(hms.next()?)?;
    // IMF-fixdate years have four digits; a bigger one (server text) must not overflow.
    if parts.next()? != b"GMT"
        || year > 9999
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || sec > 60
    {
        return None;
    }
    // Every date of a year before 1970 is before the epoch: no Unix milliseconds.
    let year = u32::try_from(year).ok().filter(|&y| y >= 1970)?;
    let days = days_since_epoch(year, month, day as u32);
    let in_day = ((h as u32 * 60 + m as u32) * 60 + sec as u32) * 1000;
    Some(u64::from(days) * 86_400_000 + u64::from(in_day))
}

/// The month names of IMF-fixdate, three letters each.
const MONTHS: &[u8; 36] = b"JanFebMarAprMayJunJulAugSepOctNovDec";

/// Days since 1970-01-01 of a date in the years 1970 to 9999: [`crate::civil::days_from_civil`]
/// in `u32`, which these years never overflow or take below zero (no 64-bit division).
fn days_since_epoch(y: u32, m: u32, d: u32) -> u32 {
    let y = if m <= 2 { y - 1 } else { y };
    let (era, yoe) = (y / 400, y % 400);
    let doy = (153 * if m > 2 { m - 3 } else { m + 9 } + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `str::split(sep)` over bytes: every field, empty ones included.
struct Fields<'a> {
    rest: Option<&'a [u8]>,
    sep: u8,
}

impl<'a> Fields<'a> {
    fn new(s: &'a [u8], sep: u8) -> Self {
        Fields { rest: Some(s), sep }
    }

    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.rest?;
        match s.iter().position(|&b| b == self.sep) {
            Some(i) => {
                let (field, tail) = s.split_at(i);
                self.rest = tail.get(1..);
                Some(field)
            }
            None => {
                self.rest = None;
                Some(s)
            }
        }
    }
}

/// A `u64` as `str::parse` reads one: an optional `+`, then one or more ASCII digits;
/// `None` on anything else or on overflow.
fn unsigned(s: &[u8]) -> Option<u64> {
    match number(s)? {
        (false, n) => Some(n),
        (true, _) => None,
    }
}

/// A decimal number as `str::parse` reads a signed one: an optional `+` or `-`, then one
/// or more ASCII digits. Returns whether it had a `-` and its magnitude; `None` on anything
/// else or when the magnitude overflows a `u64`.
fn number(s: &[u8]) -> Option<(bool, u64)> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n = 0u64;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some((negative, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_what_happens_to_the_batch() {
        assert_eq!(
            classify(&UploadOutcome::status(200)),
            Disposition::Delivered
        );
        assert_eq!(
            classify(&UploadOutcome::status(204)),
            Disposition::Delivered
        );
        assert_eq!(classify(&UploadOutcome::status(413)), Disposition::Split);
        assert_eq!(classify(&UploadOutcome::status(429)), Disposition::Retry);
        assert_eq!(classify(&UploadOutcome::status(503)), Disposition::Retry);
        assert_eq!(classify(&UploadOutcome::status(500)), Disposition::Retry);
        assert_eq!(classify(&UploadOutcome::status(400)), Disposition::Reject);
        assert_eq!(classify(&UploadOutcome::status(401)), Disposition::Reject);
        assert_eq!(classify(&UploadOutcome::NetworkError), Disposition::Retry);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stays_under_the_cap() {
        let mut rng = Rng::new(3);
        for attempts in 1..50 {
            let full = (1000u64 << (attempts - 1).min(40)).min(60_000);
            let d = backoff_ms(attempts, 1000, 60_000, &mut rng);
            assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d}");
        }
    }

    #[test]
    fn backoff_is_reproducible_from_the_seed() {
        // Pinned delays for seed 9, base 500 ms, cap 10 s: a change of the doubling, the
        // jitter or the generator shows here (and in every device's retry schedule).
        let mut rng = Rng::new(9);
        let delays: Vec<u64> = (1..10)
            .map(|n| backoff_ms(n, 500, 10_000, &mut rng))
            .collect();
        assert_eq!(delays, [421, 876, 1265, 3570, 5050, 5573, 8229, 9918, 6095]);
        // The same attempt from the same seed: the same delay.
        let first_draw: Vec<u64> = (1..10)
            .map(|n| backoff_ms(n, 500, 10_000, &mut Rng::new(9)))
            .collect();
        assert_eq!(
            first_draw,
            [421, 841, 1683, 3365, 6730, 8412, 8412, 8412, 8412]
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        let now = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Wed, 32 Oct 2015 07:28:30 GMT", now),
            None
        );
    }

    /// The parser before it read bytes, on `str::split` and `str::parse`: the reference
    /// the byte parser must agree with on every input.
    fn reference(value: &str, now_wall_ms: u64) -> Option<u64> {
        fn date(s: &str) -> Option<u64> {
            let mut parts = s.split(' ');
            let _weekday = parts.next()?;
            let day: u64 = parts.next()?.parse().ok()?;
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let name = parts.next()?;
            let month = months.iter().position(|&m| m == name)? as i64 + 1;
            let year: i64 = parts.next()?.parse().ok()?;
            let mut hms = parts.next()?.split(':');
            let h: u64 = hms.next()?.parse().ok()?;
            let m: u64 = hms.next()?.parse().ok()?;
            let sec: u64 = hms.next()?.parse().ok()?;
            if parts.next()? != "GMT"
                || !(0..=9999).contains(&year)
                || !(1..=31).contains(&day)
                || h > 23
                || m > 59
                || sec > 60
            {
                return None;
            }
            let days =
                u64::try_from(crate::civil::days_from_civil(year, month, day as i64)).ok()?;
            Some((((days * 24 + h) * 60 + m) * 60 + sec) * 1000)
        }
        let value = value.trim_ascii();
        let ms = if let Ok(seconds) = value.parse::<u64>() {
            seconds.saturating_mul(1000)
        } else {
            date(value)?.saturating_sub(now_wall_ms)
        };
        Some(ms.min(MAX_RETRY_AFTER_MS))
    }

    #[test]
    fn retry_after_reads_what_str_parse_reads() {
        let now = 1_445_412_480_000;
        let cases = [
            "",
            " ",
            "0",
            "+0",
            "-0",
            "+",
            "-",
            "00120",
            " 120 ",
            "1 20",
            "12a",
            "\t7\r\n",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
            "Wed, 21 Oct 2015 07:28:30 GMT",
            "Wed, 21 Oct 2015 07:28:30 GMT trailing",
            "Wed, 21 Oct 2015 07:28:30:99 GMT",
            "Wed, 21 Oct 2015 07:28 GMT",
            "Wed,  21 Oct 2015 07:28:30 GMT",
            "Wed, +21 Oct +2015 +07:+28:+30 GMT",
            "Wed, 21 Oct -0 07:28:30 GMT",
            "Wed, 21 Oct -0000 07:28:30 GMT",
            "Wed, 21 Oct -1 07:28:30 GMT",
            "Wed, 21 Oct -2015 07:28:30 GMT",
            "Wed, 21 Oct 9223372036854775808 07:28:30 GMT",
            "Wed, 21 Oct 18446744073709551616 07:28:30 GMT",
            "Wed, 0 Oct 2015 07:28:30 GMT",
            "Wed, 31 Feb 2015 23:59:60 GMT",
            "Wed, 21 oct 2015 07:28:30 GMT",
            "Wed, 21 Oct 2015 24:00:00 GMT",
            "Wed, 21 Oct 2015 07:60:00 GMT",
            "Wed, 21 Oct 2015 07:28:61 GMT",
            "Wed, 21 Oct 2015 07:28:30 gmt",
            "Wed, 21 Oct 2015 07:28:30",
            "Wed, 21 Oct 2015 -0:28:30 GMT",
            "Wed, 21 Oct 2015 ::: GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 01 Mar 0000 00:00:00 GMT",
            "Wed, 21 Oct 2015 07:28:30 GMT\u{e9}",
            "\u{e9} 21 Oct 2015 07:28:30 GMT",
        ];
        for text in cases {
            for now in [0, now] {
                assert_eq!(
                    parse_retry_after(text, now),
                    reference(text, now),
                    "{text:?}"
                );
            }
        }
        // Every field of a valid date cut, doubled or replaced, one at a time.
        let valid = "Wed, 21 Oct 2015 07:28:30 GMT";
        let mut rng = Rng::new(11);
        for _ in 0..20_000 {
            let mut text: Vec<u8> = valid.as_bytes().to_vec();
            for _ in 0..1 + rng.up_to(3) {
                let at = rng.up_to(text.len() as u64 - 1) as usize;
                let pick = b"0123456789 :+-GMTOct\t";
                let b = pick[rng.up_to(pick.len() as u64 - 1) as usize];
                match rng.up_to(2) {
                    0 => text[at] = b,
                    1 => text.insert(at, b),
                    _ => {
                        text.remove(at);
                    }
                }
                if text.is_empty() {
                    break;
                }
            }
            let text = core::str::from_utf8(&text).unwrap();
            assert_eq!(
                parse_retry_after(text, now),
                reference(text, now),
                "{text:?}"
            );
        }
    }

    #[test]
    fn retry_after_dates_of_every_year_and_month_agree_with_the_calendar() {
        use alloc::format;
        for year in (0..=10_000).step_by(7).chain(1965..1975) {
            for month in ["Jan", "Feb", "Mar", "Jun", "Dec"] {
                for day in [1, 28, 29, 31] {
                    let text = format!("Xxx, {day:02} {month} {year:04} 23:59:60 GMT");
                    assert_eq!(parse_retry_after(&text, 0), reference(&text, 0), "{text}");
                    let far = 300_000_000_000_000;
                    assert_eq!(
                        parse_retry_after(&text, far),
                        reference(&text, far),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn retry_after_is_capped() {
        assert_eq!(parse_retry_after("999999999", 0), Some(MAX_RETRY_AFTER_MS));
    }

    #[test]
    fn a_retry_after_date_with_an_absurd_year_is_refused_not_a_panic() {
        use alloc::format;
        // The text comes from the server: a year no IMF-fixdate has must not overflow.
        for year in [
            "99999999999999",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            let text = format!("Sun, 06 Nov {year} 08:49:37 GMT");
            assert_eq!(parse_retry_after(&text, 0), None, "{text}");
        }
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", 0),
            Some(MAX_RETRY_AFTER_MS)
        );
    }
}
