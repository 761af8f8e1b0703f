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
    let value = value.trim_ascii();
    let ms = if let Ok(seconds) = value.parse::<u64>() {
        seconds.saturating_mul(1000)
    } else {
        parse_imf_fixdate(value)?.saturating_sub(now_wall_ms)
    };
    Some(ms.min(MAX_RETRY_AFTER_MS))
}

/// Milliseconds since the Unix epoch of an IMF-fixdate.
fn parse_imf_fixdate(s: &str) -> Option<u64> {
    let mut parts = s.split(' ');
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    // IMF-fixdate years have four digits; a bigger one (server text) must not overflow.
    if parts.next()? != "GMT"
        || !(0..=9999).contains(&year)
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || sec > 60
    {
        return None;
    }
    let days = crate::civil::days_from_civil(year, month, day as i64);
    let days = u64::try_from(days).ok()?;
    Some((((days * 24 + h) * 60 + m) * 60 + sec) * 1000)
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
