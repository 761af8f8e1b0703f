//! Numbers as text, for store keys, session ids and the batch header, without
//! `core::fmt`: its machinery (`format!`, padding, integer `Display`) costs about 2 KB of
//! firmware flash that nothing else on the record and upload path needs.

use alloc::string::String;

/// Digit characters; a digit's value is its index.
const DIGITS: &[u8; 16] = b"0123456789abcdef";
/// Most digits a `u64` has in radix 10 or 16: 20 in decimal.
const MAX_DIGITS: usize = 20;

/// Appends `value` in `radix` (10 or 16, lower-case), zero-padded to at least
/// `min_width` digits: what `{value:0min_width$}` and `{value:0min_width$x}` write.
pub fn push_digits(out: &mut String, mut value: u64, radix: u64, min_width: usize) {
    let mut text = [b'0'; MAX_DIGITS];
    let mut start = MAX_DIGITS;
    while start > 0 && (value > 0 || MAX_DIGITS - start < min_width.max(1)) {
        start -= 1;
        text[start] = DIGITS[(value % radix) as usize];
        value /= radix;
    }
    out.extend(text[start..].iter().map(|&b| char::from(b)));
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    fn digits(value: u64, radix: u64, min_width: usize) -> String {
        let mut out = String::from(">");
        push_digits(&mut out, value, radix, min_width);
        out
    }

    #[test]
    fn writes_what_format_writes_in_decimal_and_hex() {
        for v in [
            0,
            1,
            9,
            10,
            255,
            0xdead_beef,
            10u64.pow(19),
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(digits(v, 10, 0), std::format!(">{v}"));
            assert_eq!(digits(v, 10, 1), std::format!(">{v}"));
            assert_eq!(digits(v, 10, 20), std::format!(">{v:020}"));
            assert_eq!(digits(v, 16, 16), std::format!(">{v:016x}"));
            assert_eq!(digits(v, 16, 0), std::format!(">{v:x}"));
            assert_eq!(digits(v, 10, 5), std::format!(">{v:05}"));
        }
    }
}
